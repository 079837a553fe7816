"""BentoML: one `@bentoml.service` class, the prediction as a `@bentoml.api` whose typed pydantic
input BentoML parses and validates, `/health` from a small FastAPI app mounted on the service
(`@bentoml.asgi_app`, BentoML's way to add routes that are not POST inference APIs), and the
shared inference layer. Served by `bentoml serve` (serve.sh beside this file).

The Open Inference Protocol (/v2, docs/api.md) the same way: its inference is a `@bentoml.api`
whose root input is the protocol's request model (servebench.serving.v2), the model's name a path
parameter; its GET routes (server metadata, liveness, readiness, a model's metadata and
readiness) are the mounted FastAPI app's. The service holds the protocol's models beside the
record API's.

BentoML picks its deserialiser by Content-Type and falls back to JSON for any other type, reads
bodies without a bound, and answers a client that stalls or goes away mid-body with a 504 or a 500
and a traceback; the shared `ContractGate`, an ASGI middleware added with `add_asgi_middleware`,
reads each prediction body whole before BentoML does and refuses what the contract refuses. BentoML's
own answers to bad requests differ from the contract in shape and, for field errors, in status;
`ContractErrors` (contract_errors.py), another such middleware, makes them the contract's. Two
pieces serve the benchmark's harness rather than the app: the Server-Timing probe around the whole
ASGI app, and the worker's parent-death signal. See docs/servers.md ("The serving frameworks").

Adaptive batching (the `batching` variant: SERVEBENCH_MAX_BATCH_SIZE above 1): the record API is a
batchable `@bentoml.api`, whose calls BentoML's dispatcher gathers into one. A batchable API takes
one input and BentoML joins the inputs of the gathered requests as lists, so each request's input
is a list of one `Call`, its model (from the path) and its body (one passenger or several), made
while BentoML parses the body; the batch is the gathered calls, whose rows go to the model in one
call per model, and each call gets back the one answer made of its own rows. A bad body or an
unknown model is refused while its own request is parsed, before it joins a batch.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import bentoml
from bentoml._internal.context import server_context
from bentoml.exceptions import NotFound
from contract_errors import ContractErrors
from fastapi import Depends, FastAPI
from pydantic import AfterValidator, BeforeValidator, RootModel, ValidationError, model_validator
from starlette.types import ASGIApp

from servebench.serving import v2
from servebench.serving.errors import error_response, install_error_handlers
from servebench.serving.gate import ContractGate
from servebench.serving.launch_env import server_id
from servebench.serving.middleware import ServerTiming
from servebench.serving.schema import (
    Batch,
    BatchPrediction,
    Health,
    Passenger,
    Prediction,
    PredictRequest,
    predictions,
)

if TYPE_CHECKING:
    from servebench.serving.inference import Inference

SERVER_ID = "bentoml"
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
# BentoML waits 60 s for a stalled body and then answers 504; the gate answers 408 sooner.
BODY_TIMEOUT_S = 10.0
# BentoML's adaptive batching, off by default (one request a call): the `batching` variant of the
# description sets the batch size (its `env`), as it does for LitServe. BentoML has no setting for
# the wait: its dispatcher sizes the wait itself from the calls it has timed. max_latency_ms is a
# deadline instead, past which the dispatcher refuses a request with a 503 rather than queue it;
# at 5 ms it refused thousands of requests at 64 clients, so it stays at BentoML's default (60 s),
# its request timeout.
MAX_BATCH_SIZE = int(os.environ.get("SERVEBENCH_MAX_BATCH_SIZE", "1"))
MAX_LATENCY_MS = int(os.environ.get("SERVEBENCH_MAX_LATENCY_MS", "60000"))


class PredictBody(RootModel[PredictRequest]):
    """One passenger, or {"instances": [...]}: the body as a whole. A pydantic model (not a bare
    union) so that BentoML hands the bytes straight to pydantic's JSON validator."""


class PredictAnswer(RootModel[Prediction | BatchPrediction]):
    """The answer, as a pydantic model so that BentoML serialises it without rebuilding its JSON
    schema on every response (it does so for a bare union)."""


@dataclass(frozen=True)
class Call:
    """One request to the batchable record API: the model of its path and its body."""

    model: str
    body: Passenger | Batch

    @property
    def rows(self) -> list[Passenger]:
        return self.body.instances if isinstance(self.body, Batch) else [self.body]


def _as_call(body: Passenger | Batch) -> list[Call]:
    # Run by BentoML's parsing of the body, in the request's own context, where its path is known.
    return [Call(Titanic.context.request.path_params["model"], body)]


def _only_answer(answers: Any) -> Any:
    # BentoML hands each request its slice of the batch's answers: here one, its own.
    return answers[0] if isinstance(answers, list) and len(answers) == 1 else answers


class PredictCall(RootModel[Annotated[PredictRequest, AfterValidator(_as_call)]]):
    """The batchable record API's input: the body, as PredictBody, which becomes a list of one
    `Call` once valid, for BentoML to join with other requests' into a batch."""

    @model_validator(mode="before")
    @classmethod
    def _served_model(cls, data: Any) -> Any:
        # Before the body is checked, as on the other stacks: an unknown model is a 404 whatever
        # the body. Not a ValueError, so that pydantic lets it through to BentoML's 404.
        model = Titanic.context.request.path_params["model"]
        if model not in bentoml.get_current_service().inference.predictors:
            raise NotFound(f"unknown model '{model}'")
        return data

    # BentoML hands the input itself (not its root) to its batching, which joins inputs as lists.
    def __len__(self) -> int:
        return len(self.root)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[Call]:  # type: ignore[override]
        return iter(self.root)  # type: ignore[arg-type]


# The batchable record API's answer to one request: its one answer of the batch's. Not a model of
# its own, as PredictAnswer is: BentoML serialises the value returned for a model, but validates it
# into one for a plain type, which unwraps here the list BentoML hands each request.
CallAnswer = Annotated[Prediction | BatchPrediction, BeforeValidator(_only_answer)]


class InferBody(v2.InferenceRequest):
    """The protocol's inference request, as the API's root input: the whole body is one model,
    which BentoML hands to pydantic's JSON validator."""


class QuietClientErrors(logging.Filter):
    """BentoML logs a traceback at ERROR for every body that fails validation (and, with batching,
    every unknown model); that is the client's fault, answered with a 4xx, and not the server's to
    log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], ValidationError | NotFound))


logging.getLogger("bentoml._internal.server.http_app").addFilter(QuietClientErrors())


def die_with_arbiter() -> None:
    """circus starts each worker in a session of its own (setsid), outside the process group that
    the launcher stops. The arbiter stops its worker when it is asked to; should the arbiter itself
    be killed first (SIGKILL after the launcher's grace period), the worker, orphaned, would serve
    on. A parent-death signal makes the kernel kill it with its arbiter."""
    if sys.platform != "linux" or server_context.worker_index is None:  # the arbiter, or no prctl
        return
    arbiter = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != arbiter:  # the arbiter died before the signal was set
        os._exit(1)


die_with_arbiter()

health_app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
# The protocol's errors on its GET routes ({"error": ...}, a V2Error as it says); contract_errors.py
# keeps that shape on /v2 paths.
install_error_handlers(health_app)
CurrentService = Annotated[Any, Depends(bentoml.get_current_service)]


@bentoml.service(name="servebench", workers=1, logging={"access": {"enabled": False}})
@bentoml.asgi_app(health_app, path="/")
class Titanic:
    def __init__(self) -> None:
        # Imported here, in the worker: `bentoml serve` imports this module in its supervising
        # process too, which has no use for torch, LightGBM and ONNX Runtime (600 MiB).
        from servebench.serving.inference import Inference

        self.inference: Inference = Inference.from_env()
        self.protocol = v2.V2Models.from_env()
        self.identity = server_id(SERVER_ID)
        self.health = Health(status="ok", framework=self.identity, models=self.inference.models)

    if MAX_BATCH_SIZE > 1:

        @bentoml.api(
            route="/predict/{model}",
            batchable=True,
            max_batch_size=MAX_BATCH_SIZE,
            max_latency_ms=MAX_LATENCY_MS,
        )
        async def predict(self, calls: PredictCall, /) -> CallAnswer:
            """The gathered calls (BentoML's join of each request's list of one `Call`, though the
            signature, which BentoML reads for the route's input and output, names one request's);
            an answer per call, in their order. Inline on the event loop, as below."""
            batch: list[Call] = calls  # type: ignore[assignment]
            by_model: dict[str, list[Call]] = {}
            for call in batch:
                by_model.setdefault(call.model, []).append(call)
            answers: dict[int, Prediction | BatchPrediction] = {}
            for model, group in by_model.items():
                probabilities = self.inference.predict(model, [row for call in group for row in call.rows])
                start = 0
                for call in group:
                    end = start + len(call.rows)
                    answers[id(call)] = predictions(probabilities[start:end], batch=isinstance(call.body, Batch))
                    start = end
            return [answers[id(call)] for call in batch]  # type: ignore[return-value]

    else:

        @bentoml.api(route="/predict/{model}")
        async def predict(self, body: PredictBody, /, ctx: bentoml.Context) -> PredictAnswer:
            """Inline on the event loop: a prediction takes tens of microseconds, less than
            BentoML's hop to its thread pool for a sync API."""
            model = ctx.request.path_params["model"]
            if model not in self.inference.predictors:
                # BentoML answers with the context's status, whatever the response returned says.
                ctx.response.status_code = 404
                return error_response(404, f"unknown model '{model}'")  # type: ignore[return-value]
            request = body.root
            batch = isinstance(request, Batch)
            passengers = request.instances if isinstance(request, Batch) else [request]
            return PredictAnswer(predictions(self.inference.predict(model, passengers), batch=batch))

    @bentoml.api(route="/v2/models/{name}/infer")
    async def v2_infer(self, body: InferBody, /, ctx: bentoml.Context) -> dict[str, Any]:
        """The Open Inference Protocol's inference, inline on the event loop like `predict`.
        BentoML has parsed the body into the protocol's request; the tensors are checked against
        the model here."""
        try:
            return self.protocol.infer_request(ctx.request.path_params["name"], body)
        except v2.V2Error as exc:
            ctx.response.status_code = exc.status
            return exc.body()


@health_app.get("/health")
async def health(service: CurrentService) -> Health:
    return service.health


@health_app.get("/v2")
async def v2_server(service: CurrentService) -> v2.ServerMetadata:
    return v2.ServerMetadata.model_validate(v2.server_metadata(service.identity))


@health_app.get("/v2/health/live")
async def v2_live() -> v2.ServerLive:
    return v2.ServerLive.model_validate(v2.LIVE)


@health_app.get("/v2/health/ready")
async def v2_ready() -> v2.ServerReady:
    # The worker serves once the service's __init__ has loaded and warmed every model.
    return v2.ServerReady.model_validate(v2.READY)


@health_app.get("/v2/models/{name}")
async def v2_model_metadata(name: str, service: CurrentService) -> v2.ModelMetadata:
    return v2.ModelMetadata.model_validate(service.protocol.metadata(name))


@health_app.get("/v2/models/{name}/ready")
async def v2_model_ready(name: str, service: CurrentService) -> v2.ModelReady:
    return v2.ModelReady.model_validate(service.protocol.ready(name))


# The first added is the outermost: the gate's own refusals are already in the contract's shape.
Titanic.add_asgi_middleware(ContractGate, body_timeout=BODY_TIMEOUT_S)
Titanic.add_asgi_middleware(ContractErrors)


def _timed(to_asgi: Callable[..., ASGIApp]) -> Callable[..., ASGIApp]:
    """Server-Timing around the whole ASGI app BentoML serves. A service's own middleware runs
    inside BentoML's tracing, metrics and timeout middleware (0.4 ms a request here), so the
    benchmark's probe goes where the worker takes the app, not through `add_asgi_middleware`.
    Measurement only: it changes no answer."""

    @functools.wraps(to_asgi)
    def timed_to_asgi(self: bentoml.Service[Any], is_main: bool = True) -> ASGIApp:
        return ServerTiming(to_asgi(self, is_main))

    return timed_to_asgi


bentoml.Service.to_asgi = _timed(bentoml.Service.to_asgi)  # type: ignore[method-assign]
