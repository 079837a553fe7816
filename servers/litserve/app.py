"""LitServe: one `LitAPI` per model, each on its own `api_path` (/predict/<model>), all in one
`LitServer` on one port, as LitServe's multi-endpoint documentation has it.

The request body is validated by the shared pydantic models through the type hint of
`decode_request`: LitServe hands that annotation to FastAPI, which validates the body in the API
server process; `predict` runs the shared inference layer in the model's inference worker, and
the return annotation of `encode_response` is the route's response model.

No `from __future__ import annotations` here: LitServe reads those two annotations at run time
(`inspect.signature`) to build the route, and string annotations break that.

Processes (LitServe's architecture, see docs/servers.md): this main process, a multiprocessing Manager
that holds the queues, one API server (uvicorn, forked) and one inference worker per LitAPI
(spawned), i.e. one per model, plus multiprocessing's resource tracker.
"""

import argparse
import multiprocessing
import os
import sys
from multiprocessing.connection import Connection
from pathlib import Path

import litserve as ls
from litserve.utils import WorkerSetupStatus
from starlette.exceptions import HTTPException

from servebench.contract import MAX_BODY_BYTES
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


class TitanicAPI(ls.LitAPI):
    """One model of the models folder, served at /predict/<model>."""

    def __init__(self, model: str, file: str, directory: Path, failures: Connection) -> None:
        super().__init__(api_path=f"/predict/{model}")
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


def create_server(failures: Connection) -> ls.LitServer:
    directory, files = served_models()
    apis = [TitanicAPI(name, file, directory, failures) for name, file in sorted(files.items())]
    served = sorted(files)
    identity = server_id(SERVER_ID)
    server = ls.LitServer(
        apis,
        accelerator="cpu",
        workers_per_device=1,
        healthcheck_path=LITSERVE_HEALTH,
        max_payload_size=MAX_BODY_BYTES,
        # The 415, where FastAPI would read a body of another type as raw bytes and answer 422.
        # The body itself is LitServe's to read: max_payload_size answers its 413.
        middlewares=[(ContractGate, {"paths": [api.api_path for api in apis], "read_body": False})],
    )
    app = server.app

    install_error_handlers(app)

    @app.get("/health")
    async def health() -> Health:
        # Ready once every model's inference worker is: LitServe's own check (LITSERVE_HEALTH)
        # does the same, but answers with a plain-text "ok".
        status = server.workers_setup_status
        if not status or any(state != WorkerSetupStatus.READY for state in status.values()):
            raise HTTPException(503, "the models are loading")
        return Health(status="ok", framework=identity, models=served)

    # Outermost: the timing covers LitServe's own middlewares (payload limit, gzip) too.
    app.add_middleware(ServerTiming)
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default=os.environ.get("SERVEBENCH_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    args = parser.parse_args()
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
