"""Triton Inference Server over the launcher's ONNX models: writes a model repository (one Python
backend model per ONNX file, servers/triton/model.py, its config.pbtxt from the ONNX graph) and
a backend folder into a temporary workspace, runs the tritonserver binary nvidia-pytriton ships,
and removes the workspace when Triton exits.

Triton serves the Open Inference Protocol (/v2) natively and takes no custom route: the record API
and /health are not served (the description's `apis: [v2]`). HTTP on the launcher's host and
port; gRPC and metrics off.

SERVEBENCH_MAX_BATCH_SIZE (default 0: no batching) turns on Triton's dynamic batcher for every
model whose inputs and outputs all have a dynamic first dimension: preferred batch
SERVEBENCH_MAX_BATCH_SIZE, gathered for at most SERVEBENCH_MAX_QUEUE_DELAY_US. Triton then
answers a tensor of the batch dimension alone with shape [n, 1] (docs/servers.md), which is why
no variant of the description sets it.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from types import FrameType

import onnxruntime as ort
import pytriton

from servebench.serving.launch_env import v2_models
from servebench.serving.v2 import ONNX_DATATYPES

HERE = Path(__file__).resolve().parent
TRITON = Path(pytriton.__file__).resolve().parent / "tritonserver"
PYTHON_BACKEND = ("libtriton_python.so", "triton_python_backend_utils.py")
PREFERRED_BATCH = int(os.environ.get("SERVEBENCH_MAX_BATCH_SIZE", "0"))
QUEUE_DELAY_US = int(os.environ.get("SERVEBENCH_MAX_QUEUE_DELAY_US", "5000"))
# max_batch_size when the dynamic batcher is on: Triton refuses a request whose own batch exceeds
# it, and a request may carry more rows than the preferred batch of 16.
MAX_BATCH_ROWS = 1 << 20


def _dims(shape: list[object]) -> list[int]:
    return [d if isinstance(d, int) and d >= 0 else -1 for d in shape]


def _tensor(node: ort.NodeArg, model: str, skip_batch: bool) -> str:
    datatype = ONNX_DATATYPES.get(node.type)
    if datatype is None:
        raise SystemExit(f"triton: model {model}: {node.name!r} is a {node.type}, which the stack does not serve")
    dims = _dims(node.shape)[1:] if skip_batch else _dims(node.shape)
    # A tensor of the batch dimension alone: Triton wants dims, so [1], reshaped to none for the model.
    shape = f"dims: [ {', '.join(map(str, dims))} ]" if dims else "dims: [ 1 ] reshape: { shape: [ ] }"
    return f'  {{ name: "{node.name}" data_type: TYPE_{datatype} {shape} }}'


def model_config(name: str, path: Path) -> str:
    """config.pbtxt of one ONNX model for the Python backend: its graph's inputs and outputs, one
    CPU instance, and the dynamic batcher when asked for and the graph has a dynamic batch."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    nodes = [*session.get_inputs(), *session.get_outputs()]
    batch = PREFERRED_BATCH > 0 and all(n.shape and _dims(n.shape)[0] == -1 for n in nodes)
    lines = [
        f'name: "{name}"',
        'backend: "python"',
        f"max_batch_size: {MAX_BATCH_ROWS if batch else 0}",
        "input [",
        ",\n".join(_tensor(n, name, batch) for n in session.get_inputs()),
        "]",
        "output [",
        ",\n".join(_tensor(n, name, batch) for n in session.get_outputs()),
        "]",
        "instance_group [ { kind: KIND_CPU, count: 1 } ]",
        f'parameters: {{ key: "onnx_path" value: {{ string_value: "{path}" }} }}',
    ]
    if batch:
        lines.append(
            f"dynamic_batching {{ preferred_batch_size: [ {PREFERRED_BATCH} ] "
            f"max_queue_delay_microseconds: {QUEUE_DELAY_US} }}"
        )
    return "\n".join(lines) + "\n"


def write_workspace(workspace: Path) -> tuple[Path, Path]:
    """The model repository and the backend folder: the Python backend of nvidia-pytriton with
    the stub built for this interpreter's Python version beside it, where the backend looks."""
    backends = workspace / "backends" / "python"
    backends.mkdir(parents=True)
    for name in PYTHON_BACKEND:
        (backends / name).symlink_to(TRITON / "backends" / "python" / name)
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = TRITON / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.is_file():
        raise SystemExit(f"triton: nvidia-pytriton has no Python backend stub for Python {version}")
    (backends / "triton_python_backend_stub").symlink_to(stub)

    repository = workspace / "models"
    directory, files = v2_models()
    if not files:
        raise SystemExit("triton: no ONNX model to serve")
    for name, file in sorted(files.items()):
        path = (directory / file).resolve()
        if not path.is_file():
            raise SystemExit(f"triton: missing model file {path}")
        (repository / name / "1").mkdir(parents=True)
        (repository / name / "1" / "model.py").symlink_to(HERE / "model.py")
        (repository / name / "config.pbtxt").write_text(model_config(name, path))
    return repository, workspace / "backends"


def stub_environment() -> dict[str, str]:
    """The Python backend's stub embeds libpython: this interpreter's (not whichever the system
    has), and the path of this environment's packages for model.py to add."""
    env = dict(os.environ)
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    env["LD_LIBRARY_PATH"] = ":".join(p for p in (libdir, env.get("LD_LIBRARY_PATH", "")) if p)
    env["SERVEBENCH_TRITON_SITE"] = sysconfig.get_paths()["purelib"]
    return env


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default=os.environ.get("SERVEBENCH_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    args = parser.parse_args()

    workspace = Path(tempfile.mkdtemp(prefix="servebench-triton-"))
    try:
        repository, backends = write_workspace(workspace)
        command = [
            str(TRITON / "bin" / "tritonserver"),
            f"--model-repository={repository}",
            f"--backend-directory={backends}",
            f"--http-address={args.host}",
            f"--http-port={args.port}",
            "--allow-grpc=false",
            "--allow-metrics=false",
            "--allow-gpu-metrics=false",
            "--allow-cpu-metrics=false",
            # Shared-memory registration, model (un)loading, tracing and log settings answer only a
            # request carrying a key nobody is told: the benchmark serves inference, not control.
            f"--http-restricted-api=shared-memory,model-repository,trace,logging:servebench-admin={secrets.token_hex(16)}",
            # No GPU: no pinned host memory to allocate for transfers.
            "--pinned-memory-pool-byte-size=0",
            "--disable-auto-complete-config",
            # A model that fails to load stops the server, rather than leaving it up and unready.
            "--exit-on-error=true",
            # Within the launcher's grace period before SIGKILL.
            "--exit-timeout-secs=3",
            "--log-verbose=0",
        ]
        server = subprocess.Popen(command, env=stub_environment())

        def forward(signum: int, _frame: FrameType | None) -> None:
            server.send_signal(signum)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        return server.wait()
    finally:
        shutil.rmtree(workspace, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
