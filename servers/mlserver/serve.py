"""MLServer over the launcher's ONNX models, as `mlserver start <folder>` runs it: a model
repository folder is written into a temporary workspace (this folder's settings.json with the
launcher's host and ports, and one model-settings.json per model naming the custom runtime,
servers/mlserver/runtime.py), then MLServer loads the settings and models from it with its own
`load_settings` and serves them; the workspace is removed once read.

The only step beyond `mlserver start` is before serving: the shared wrappers every Python stack
has (servebench.serving: the contract's gate (415, 413, empty body), Server-Timing, and the error
handlers that answer FastAPI's validation errors in the protocol's or the record API's shape) go
around MLServer's REST app, and GET /health, a server-wide route that no one model owns, is added
to it. The record API is the models' own MLServer custom endpoints (runtime.py).

SERVEBENCH_MAX_BATCH_SIZE and SERVEBENCH_MAX_BATCH_TIME_S (default 0: off) set MLServer's adaptive
batching (`max_batch_size`, `max_batch_time`) in every model's settings.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

from fastapi.responses import JSONResponse
from mlserver import MLServer
from mlserver.cli.serve import load_settings
from mlserver.errors import MLServerError

from servebench.serving.errors import error_response, install_error_handlers
from servebench.serving.gate import ContractGate
from servebench.serving.launch_env import served_models, server_id, v2_models
from servebench.serving.middleware import ServerTiming
from servebench.serving.schema import Health
from servebench.serving.v2 import PLATFORM

SERVER_ID = "mlserver"
HERE = Path(__file__).resolve().parent
MAX_BATCH_SIZE = int(os.environ.get("SERVEBENCH_MAX_BATCH_SIZE", "0"))
MAX_BATCH_TIME_S = float(os.environ.get("SERVEBENCH_MAX_BATCH_TIME_S", "0"))


def free_port(host: str) -> int:
    """A free port on the host, for MLServer's gRPC server, which it always starts."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def write_repository(folder: Path, host: str, port: int) -> list[str]:
    """settings.json and one <model>/model-settings.json per model; the record models' names."""
    settings = json.loads((HERE / "settings.json").read_text())
    # server_name: GET /v2 names the server as /health does (a variant's own id).
    settings.update(server_name=server_id(SERVER_ID), host=host, http_port=port, grpc_port=free_port(host))
    (folder / "settings.json").write_text(json.dumps(settings, indent=2))
    directory, files = v2_models()
    if not files:
        raise SystemExit("mlserver: no ONNX model to serve")
    record = {name for name, file in served_models()[1].items() if file.endswith(".onnx")}
    for name, file in sorted(files.items()):
        path = (directory / file).resolve()
        if not path.is_file():
            raise SystemExit(f"mlserver: missing model file {path}")
        model: dict[str, Any] = {
            "name": name,
            "implementation": "runtime.OnnxRuntime",
            "platform": PLATFORM,
            "parameters": {"uri": str(path), "extra": {"record": name in record}},
        }
        if MAX_BATCH_SIZE > 1:
            model.update(max_batch_size=MAX_BATCH_SIZE, max_batch_time=MAX_BATCH_TIME_S)
        (folder / name).mkdir()
        (folder / name / "model-settings.json").write_text(json.dumps(model, indent=2))
    return sorted(record)


async def all_ready(server: MLServer, names: list[str]) -> bool:
    """Every model named is in MLServer's registry and ready (its own /v2/health/ready is true
    before any model is registered)."""
    try:
        return all([await server._data_plane.model_ready(name) for name in names])
    except MLServerError:  # not registered yet
        return False


async def serve(folder: Path, records: list[str]) -> None:
    settings, models_settings = await load_settings(str(folder))
    # Read whole: nothing is left to remove if the server is killed.
    shutil.rmtree(folder, ignore_errors=True)
    served = [model.name for model in models_settings]
    # The module MLServer imports by each model's `implementation`, where its loads report.
    runtime = importlib.import_module("runtime")
    server = MLServer(settings)
    app = server._rest_server._app
    identity = server_id(SERVER_ID)

    @app.get("/health", response_model=None)
    async def health() -> Health | JSONResponse:
        # Every model of the repository registered and ready: the launcher waits for this 200,
        # and the models load after the HTTP server is up (in the pool, with parallel workers).
        if runtime.LOAD_FAILURES or not await all_ready(server, served):
            return error_response(503, "models are loading")
        return Health(status="ok", framework=identity, models=records)

    install_error_handlers(app)
    # Outermost last: the gate sees the request as the client sent it.
    app.add_middleware(ContractGate)
    app.add_middleware(ServerTiming)
    started = asyncio.ensure_future(server.start(models_settings))
    failed = asyncio.ensure_future(runtime.LOAD_FAILED.wait())
    await asyncio.wait({started, failed}, return_when=asyncio.FIRST_COMPLETED)
    if runtime.LOAD_FAILURES:
        # Leaving asyncio.run cancels the servers; the log's last line says why.
        raise SystemExit("mlserver: " + "; ".join(runtime.LOAD_FAILURES))
    failed.cancel()
    await started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    # The runtime's module, for MLServer to import by its `implementation` (also in any worker).
    sys.path.insert(0, str(HERE))
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), os.environ.get("PYTHONPATH", "")) if p)
    folder = Path(tempfile.mkdtemp(prefix="servebench-mlserver-"))
    try:
        records = write_repository(folder, args.host, args.port)
        asyncio.run(serve(folder, records))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
