"""LitServe: one `LitAPI` per model, each on its own `api_path` (/predict/<model>), all in one
`LitServer` on one port, as LitServe's multi-endpoint documentation has it.

The request body is validated by the shared pydantic models through the type hint of
`decode_request`: LitServe hands that annotation to FastAPI, which validates the body in the API
server process; `predict` runs the shared inference layer in the model's inference worker, and
the return annotation of `encode_response` is the route's response model.

No `from __future__ import annotations` here: LitServe reads those two annotations at run time
(`inspect.signature`) to build the route, and string annotations break that.

The Open Inference Protocol (/v2, docs/api.md) is one more LitAPI, `OpenInferenceAPI`, whose
routes come from a LitServe spec (`OpenInferenceSpec`, as LitServe's OpenAI spec brings the OpenAI
routes): its one inference worker holds every model of the protocol (servebench.serving.v2) and
answers inference, metadata and readiness by model name, which the spec's routes take from the
path and send it with the body.

Processes (LitServe's architecture, see docs/servers.md): this main process, a multiprocessing Manager
that holds the queues, one API server (uvicorn, forked) and one inference worker per LitAPI
(spawned), i.e. one per model and one for the protocol, plus multiprocessing's resource tracker.
"""

import argparse
import asyncio
import multiprocessing
import os
import sys
import time
import uuid
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import litserve as ls
from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse
from litserve.specs.base import LitSpec
from litserve.utils import LitAPIStatus, ResponseBufferItem, WorkerSetupStatus

from servebench.contract import MAX_BODY_BYTES
from servebench.serving import v2
from servebench.serving.errors import install_error_handlers
from servebench.serving.gate import ContractGate
from servebench.serving.launch_env import served_models, server_id
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

SERVER_ID = "litserve"
# LitServe's own readiness endpoint, moved so that /health can answer with the contract's body.
LITSERVE_HEALTH = "/litserve/health"
# What the protocol's routes ask its inference worker, with a model's name (and a body).
INFER, METADATA, READY = "infer", "metadata", "ready"


# LitServe's adaptive batching, off by default (one request a `predict`): the `batching` variant
# of the description sets both (its `env`), as LitServe's batching guide does on the LitAPI.
MAX_BATCH_SIZE = int(os.environ.get("SERVEBENCH_MAX_BATCH_SIZE", "1"))
BATCH_TIMEOUT_S = float(os.environ.get("SERVEBENCH_BATCH_TIMEOUT_S", "0"))


class TitanicAPI(ls.LitAPI):
    """One model of the models folder, served at /predict/<model>."""

    def __init__(self, model: str, file: str, directory: Path, failures: Connection) -> None:
        super().__init__(api_path=f"/predict/{model}", max_batch_size=MAX_BATCH_SIZE, batch_timeout=BATCH_TIMEOUT_S)
        self.model, self.file, self.directory = model, file, directory
        self.failures = failures

    def setup(self, device: str) -> None:
        # Imported here, in the inference worker: the API server and the main process never load
        # torch, LightGBM or ONNX Runtime.
        from servebench.serving.inference import Inference

        try:
            self.engine = Inference(self.directory, {self.model: self.file})
        except Exception as exc:
            # LitServe logs the traceback and stops; the main process repeats the cause last.
            self.failures.send(f"model {self.model}: {exc}")
            raise

    def decode_request(self, request: PredictRequest) -> Passenger | Batch:
        return request

    def predict(self, body: Passenger | Batch) -> tuple[bool, list[float]]:
        batch = isinstance(body, Batch)
        passengers = body.instances if isinstance(body, Batch) else [body]
        return batch, self.engine.predict(self.model, passengers).tolist()

    def encode_response(self, output: tuple[bool, list[float]]) -> Prediction | BatchPrediction:
        batch, probabilities = output
        return predictions(probabilities, batch=batch)


class BatchingTitanicAPI(TitanicAPI):
    """`TitanicAPI` with LitServe's adaptive batching: the rows of every body gathered within the
    timeout go to the model as one call, and each body gets its own rows back."""

    def batch(self, inputs: list[Passenger | Batch]) -> list[Passenger | Batch]:
        # The bodies stay a list: their rows are joined in `predict`, where their sizes are known.
        return inputs

    def unbatch(self, output: list[tuple[bool, list[float]]]) -> list[tuple[bool, list[float]]]:
        return output

    def predict(self, bodies: list[Passenger | Batch]) -> list[tuple[bool, list[float]]]:
        rows = [body.instances if isinstance(body, Batch) else [body] for body in bodies]
        probabilities = self.engine.predict(self.model, [p for part in rows for p in part]).tolist()
        out, start = [], 0
        for body, part in zip(bodies, rows, strict=True):
            out.append((isinstance(body, Batch), probabilities[start : start + len(part)]))
            start += len(part)
        return out


def all_ready(server: ls.LitServer) -> bool:
    """Every inference worker has finished its setup (LitServe serves once any one has)."""
    status = server.workers_setup_status
    return bool(status) and all(state == WorkerSetupStatus.READY for state in status.values())


class OpenInferenceSpec(LitSpec):
    """The Open Inference Protocol's routes, as a LitServe spec: the way LitServe gives one LitAPI
    the several routes of a standard protocol (its OpenAI specs do the same). The server's own
    routes (/v2, liveness, readiness) are answered here, in the API server; a model's inference,
    metadata and readiness go to the LitAPI's inference worker, which holds the models, as
    `(what, name, body)`: the model's name comes from the path, which LitServe never hands a
    worker itself, and the body goes as it came (JSON or no Content-Type: ContractGate answers
    the 415), for the worker to parse and check against the model (`V2Models.infer`).

    Errors: a `V2Error` in the worker comes back as the HTTPException LitServe carries between
    processes, and the app's exception handlers answer it, like FastAPI's own, as `{"error": ...}`."""

    def __init__(self, identity: str) -> None:
        super().__init__()
        self.api_path = "/v2/models/{name}/infer"  # also the key of the worker's request queue
        self.identity = identity

    def pre_setup(self, lit_api: ls.LitAPI) -> None:
        self.add_endpoint("/v2", self.server_metadata, ["GET"])
        self.add_endpoint("/v2/health/live", self.live, ["GET"])
        self.add_endpoint("/v2/health/ready", self.ready, ["GET"])
        self.add_endpoint("/v2/models/{name}", self.model_metadata, ["GET"])
        self.add_endpoint("/v2/models/{name}/ready", self.model_ready, ["GET"])
        self.add_endpoint(self.api_path, self.infer, ["POST"])

    def decode_request(self, request: tuple[str, str, bytes], context_kwargs: dict | None = None) -> Any:
        return request

    def encode_response(self, output: dict[str, Any], context_kwargs: dict | None = None) -> Any:
        return output

    async def server_metadata(self) -> v2.ServerMetadata:
        return v2.ServerMetadata.model_validate(v2.server_metadata(self.identity))

    async def live(self) -> v2.ServerLive:
        return v2.ServerLive.model_validate(v2.LIVE)

    async def ready(self) -> v2.ServerReady:
        if not all_ready(self._server):
            raise HTTPException(503, "the models are loading")
        return v2.ServerReady.model_validate(v2.READY)

    async def model_metadata(self, name: str) -> JSONResponse:
        return JSONResponse(await self._ask(METADATA, name))

    async def model_ready(self, name: str) -> JSONResponse:
        return JSONResponse(await self._ask(READY, name))

    async def infer(self, name: str, request: Request) -> JSONResponse:
        # LitServe's max_payload_size bounds the read (413).
        return JSONResponse(await self._ask(INFER, name, await request.body()))

    async def _ask(self, what: str, name: str, body: bytes = b"") -> Any:
        """The inference worker's answer, through LitServe's request queue and response buffer,
        as LitServe's own routes wait for theirs."""
        uid = str(uuid.uuid4())
        event = asyncio.Event()
        self.response_buffer[uid] = ResponseBufferItem(event=event)
        self.request_queue.put((self.response_queue_id, uid, time.monotonic(), (what, name, body)))
        await event.wait()
        response, status = self.response_buffer.pop(uid).response
        if status == LitAPIStatus.ERROR:
            if isinstance(response, HTTPException):
                raise response
            raise HTTPException(500, "the inference worker failed")
        return response


class OpenInferenceAPI(ls.LitAPI):
    """Every model of the Open Inference Protocol (`launch_env.v2_models()`: the ONNX models and
    the model packs) in one inference worker; the spec gives it its routes."""

    def __init__(self, identity: str, failures: Connection) -> None:
        super().__init__(spec=OpenInferenceSpec(identity))
        self.failures = failures

    def setup(self, device: str) -> None:
        try:
            self.models = v2.V2Models.from_env()
        except Exception as exc:
            self.failures.send(f"the Open Inference Protocol's models: {exc}")
            raise

    def predict(self, call: tuple[str, str, bytes]) -> dict[str, Any]:
        what, name, body = call
        try:
            if what == INFER:
                return self.models.infer(name, body)
            if what == METADATA:
                return self.models.metadata(name)
            return self.models.ready(name)
        except v2.V2Error as exc:
            # The client's fault: LitServe carries FastAPI's HTTPException back to the API server
            # without logging it, where any other exception is logged as the worker's own.
            raise HTTPException(exc.status, exc.message) from None


def create_server(failures: Connection) -> ls.LitServer:
    directory, files = served_models()
    api = BatchingTitanicAPI if MAX_BATCH_SIZE > 1 else TitanicAPI
    apis = [api(name, file, directory, failures) for name, file in sorted(files.items())]
    served = sorted(files)
    identity = server_id(SERVER_ID)
    server = ls.LitServer(
        [*apis, OpenInferenceAPI(identity, failures)],
        accelerator="cpu",
        workers_per_device=1,
        healthcheck_path=LITSERVE_HEALTH,
        max_payload_size=MAX_BODY_BYTES,
        # The 415, where FastAPI would read a body of another type as raw bytes and answer 422;
        # on /v2 routes, the protocol's (no Content-Type is fine there). The body itself is
        # LitServe's to read: max_payload_size answers its 413.
        middlewares=[(ContractGate, {"paths": [api.api_path for api in apis], "read_body": False})],
    )
    app = server.app

    install_error_handlers(app)

    @app.get("/health")
    async def health() -> Health:
        # Ready once every inference worker is: LitServe's own check (LITSERVE_HEALTH) does the
        # same, but answers with a plain-text "ok".
        if not all_ready(server):
            raise HTTPException(503, "the models are loading")
        return Health(status="ok", framework=identity, models=served)

    # Outermost: the timing covers LitServe's own middlewares (payload limit, gzip) too.
    app.add_middleware(ServerTiming)
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default=os.environ.get("SERVEBENCH_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    # Behind nginx (the `nginx` variant): a Unix socket in place of the port, and idle connections
    # kept longer than nginx keeps its own to the app (30 s), so that nginx never reuses one the
    # app has closed. Both go to uvicorn's config, which LitServe builds from run()'s arguments.
    parser.add_argument("--uds", help="listen on this Unix socket instead of HOST:PORT")
    parser.add_argument("--timeout-keep-alive", type=int, help="uvicorn's keep-alive, in seconds")
    args = parser.parse_args()
    uvicorn_options: dict[str, Any] = {}
    if args.uds:
        uvicorn_options["uds"] = args.uds
    if args.timeout_keep_alive is not None:
        uvicorn_options["timeout_keep_alive"] = args.timeout_keep_alive
    # Inference workers are spawned: the pipe's sending end travels with each LitAPI. A pipe, not a
    # queue: it holds no semaphore that a SIGTERM would leave to the resource tracker.
    causes, failures = multiprocessing.get_context("spawn").Pipe(duplex=False)
    server = create_server(failures)
    try:
        server.run(
            host=args.host,
            port=args.port,
            # One HTTP process: LitServe's default is one per inference worker, here four.
            num_api_servers=1,
            log_level="warning",
            generate_client_file=False,
            **uvicorn_options,
        )
    except BaseException:
        if not causes.poll():
            raise
    if not causes.poll():
        return
    # A model that failed to load: LitServe has logged its traceback and shut down (noisily, when
    # another worker was ready first). Say why, last, and leave without the exit-time noise of
    # its queue proxies.
    failed = []
    while causes.poll():
        failed.append(causes.recv())
    print(f"litserve: cannot start: {'; '.join(failed)}", file=sys.stderr, flush=True)
    for child in multiprocessing.active_children():
        child.kill()
    os._exit(1)


if __name__ == "__main__":
    main()
