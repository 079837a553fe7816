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
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import bentoml
from bentoml._internal.context import server_context
from contract_errors import ContractErrors
from fastapi import Depends, FastAPI
from pydantic import RootModel, ValidationError
from starlette.types import ASGIApp

from servebench.serving import v2
from servebench.serving.errors import error_response, install_error_handlers
from servebench.serving.gate import ContractGate
from servebench.serving.launch_env import server_id
from servebench.serving.middleware import ServerTiming
from servebench.serving.schema import Batch, BatchPrediction, Health, Prediction, PredictRequest, predictions

if TYPE_CHECKING:
    from servebench.serving.inference import Inference

SERVER_ID = "bentoml"
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
# BentoML waits 60 s for a stalled body and then answers 504; the gate answers 408 sooner.
BODY_TIMEOUT_S = 10.0


class PredictBody(RootModel[PredictRequest]):
    """One passenger, or {"instances": [...]}: the body as a whole. A pydantic model (not a bare
    union) so that BentoML hands the bytes straight to pydantic's JSON validator."""


class PredictAnswer(RootModel[Prediction | BatchPrediction]):
    """The answer, as a pydantic model so that BentoML serialises it without rebuilding its JSON
    schema on every response (it does so for a bare union)."""


class InferBody(v2.InferenceRequest):
    """The protocol's inference request, as the API's root input: the whole body is one model,
    which BentoML hands to pydantic's JSON validator."""


class QuietClientErrors(logging.Filter):
    """BentoML logs a traceback at ERROR for every body that fails validation; that is the
    client's fault, answered with a 4xx, and not the server's to log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], ValidationError))


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

    @bentoml.api(route="/predict/{model}")
    async def predict(self, body: PredictBody, /, ctx: bentoml.Context) -> PredictAnswer:
        """Inline on the event loop: a prediction takes tens of microseconds, less than BentoML's
        hop to its thread pool for a sync API."""
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
