"""Ray Serve: the FastAPI app of servers/fastapi, unchanged (its `create_app`), as the HTTP ingress
of one deployment with one replica.

Ray Serve's proxy actor accepts the HTTP connection and hands each request to the replica as a Ray
actor call; the replica runs the FastAPI app (routing, pydantic validation, the error handlers,
ServerTiming and BodyLimit, the shared inference layer, and the Open Inference Protocol's /v2
routes with their ONNX sessions) as it runs under uvicorn in servers/fastapi. What differs from
that stack is Ray Serve itself: the proxy, the hop to the replica and back, and the control plane
beside them.

Adaptive batching (the `batching` variant: SERVEBENCH_MAX_BATCH_SIZE above 1): the same app, whose
record API hands each valid request to the replica's `predict`, Serve's `@serve.batch` method,
which gathers the requests of the timeout into one call and gives each its own answer back. The
replica builds the app itself (`__serve_build_asgi_app__`, Serve's late-bound ingress), so that
the route can reach the replica's method.

`app` is what main.py deploys, and what `serve run serve_app:app` deploys on a running cluster.
"""

import importlib.util
import os
from pathlib import Path
from types import ModuleType
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.routing import APIRoute
from ray import serve
from starlette.exceptions import HTTPException

from servebench.serving.gate import require_json
from servebench.serving.schema import (
    RESPONSES,
    Batch,
    BatchPrediction,
    Passenger,
    Prediction,
    PredictRequest,
    predictions,
)

FASTAPI_APP = Path(__file__).resolve().parent.parent / "fastapi" / "app.py"
PREDICT = "/predict/{model}"
# Serve's adaptive batching, off by default (one request a call): the `batching` variant of the
# description sets both (its `env`, which main.py's Ray processes inherit), as it does for
# LitServe.
MAX_BATCH_SIZE = int(os.environ.get("SERVEBENCH_MAX_BATCH_SIZE", "1"))
BATCH_TIMEOUT_S = float(os.environ.get("SERVEBENCH_BATCH_TIMEOUT_S", "0"))


def fastapi_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("servebench_fastapi_app", FASTAPI_APP)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fastapi_app() -> FastAPI:
    """The app of servers/fastapi, built in the replica (Serve calls this builder there), so that
    the models (the record API's and the protocol's) load once, in the process that serves them."""
    app: FastAPI = fastapi_module().create_app()
    return app


# One replica of one CPU, the core the launcher gives the server.
# max_ongoing_requests: Serve's proxy hands a request to the replica as soon as its head is in,
# and the request holds one of the replica's slots until its answer is out. At Serve's default
# of 5, five clients trickling their bodies hold every slot and nothing else is served; the
# replica's FastAPI app is async and predicts inline in tens of microseconds, so it can take
# as many requests at once as uvicorn does in servers/fastapi. 1024 is above any concurrency
# the benchmark and the tests use (256).
# max_constructor_retry_count: a replica whose constructor fails (a missing or corrupt model
# file) fails the same way again; one failure, not Serve's three, each in a fresh worker
# process, ends the deployment.
@serve.deployment(
    num_replicas=1,
    ray_actor_options={"num_cpus": 1},
    max_ongoing_requests=1024,
    max_constructor_retry_count=1,
)
@serve.ingress(fastapi_app)
class Titanic:
    """No code of its own: every route is the FastAPI app's."""


# As Titanic, with the record API's predictions batched by Serve (`max_batch_size`,
# `batch_wait_timeout_s` from the description's env).
@serve.deployment(
    num_replicas=1,
    ray_actor_options={"num_cpus": 1},
    max_ongoing_requests=1024,
    max_constructor_retry_count=1,
)
@serve.ingress()
class BatchingTitanic:
    """The FastAPI app of servers/fastapi, its record API's route answered by `predict`."""

    def __init__(self) -> None:
        from servebench.serving.inference import Inference

        self.engine = Inference.from_env()

    def __serve_build_asgi_app__(self) -> FastAPI:
        app: FastAPI = fastapi_module().create_app(inference=self.engine)
        served = self.engine.models
        app.router.routes[:] = [r for r in app.router.routes if not (isinstance(r, APIRoute) and r.path == PREDICT)]

        async def served_json(request: Request, model: str) -> str:
            # As the app's own route: the model first (404), then the media type (415), then the
            # body (FastAPI's 422), each answered before the request joins a batch.
            if model not in served:
                raise HTTPException(404, f"unknown model '{model}'")
            require_json(request.headers)
            return model

        @app.post(PREDICT, responses=RESPONSES)
        async def predict(
            model: Annotated[str, Depends(served_json)], body: PredictRequest
        ) -> Prediction | BatchPrediction:
            answer: Prediction | BatchPrediction = await self.predict((model, body))
            return answer

        return app

    @serve.batch(max_batch_size=MAX_BATCH_SIZE, batch_wait_timeout_s=BATCH_TIMEOUT_S)
    async def predict(self, calls: list[tuple[str, Passenger | Batch]]) -> list[Prediction | BatchPrediction]:
        """The gathered requests, each (model, body): their rows go to each model in one call, and
        each request gets the answer made of its own rows, in their order."""
        by_model: dict[str, list[int]] = {}
        for index, (model, _) in enumerate(calls):
            by_model.setdefault(model, []).append(index)
        answers: list[Prediction | BatchPrediction | None] = [None] * len(calls)
        for model, indices in by_model.items():
            rows = [_rows(calls[i][1]) for i in indices]
            probabilities = self.engine.predict(model, [p for part in rows for p in part])
            start = 0
            for index, part in zip(indices, rows, strict=True):
                answers[index] = predictions(
                    probabilities[start : start + len(part)], batch=isinstance(calls[index][1], Batch)
                )
                start += len(part)
        return [answer for answer in answers if answer is not None]


def _rows(body: Passenger | Batch) -> list[Passenger]:
    return body.instances if isinstance(body, Batch) else [body]


app = (BatchingTitanic if MAX_BATCH_SIZE > 1 else Titanic).bind()
