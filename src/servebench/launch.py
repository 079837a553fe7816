"""Start and stop a server from its description (servers/<id>/server.yaml): what servers/start.sh
and servers/stop.sh run.

    python -m servebench.launch start ID PORT
    python -m servebench.launch stop ID | --all

`start` launches the description's command in a session of its own (so that stopping it stops
every process it spawned), pinned to the server core, and returns once its health path answers (/health unless the
description names another); it
writes RUN_DIR/ID.pid, ID.log and ID.json (pid, port, cpus, start-up seconds, command).
Environment: SERVEBENCH_MODELS_DIR (default OUT/models), SERVEBENCH_OUT (outputs/),
SERVEBENCH_SERVER_CPUS (taskset list; default core 0 on a machine with two or more cores, empty
for no pinning), SERVEBENCH_HOST (127.0.0.1), SERVEBENCH_START_TIMEOUT (seconds; default the
description's `start_timeout`, 120 unless it says).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil

from servebench import registry
from servebench.bench.cpus import parse_cpus
from servebench.paths import PROJECT_ROOT, out_dir
from servebench.registry import RegistryError, ServerSpec

VENV = PROJECT_ROOT / ".venv"
# The stacks' own environments (a description's `environment`), one folder each.
OWN_VENVS = PROJECT_ROOT / ".venvs"
STOP_GRACE_S = 5.0
# Floods of idle connections must meet the server's own timeouts, not the descriptor limit.
OPEN_FILES = 65536


class LaunchError(Exception):
    """A server that could not be started or stopped; the message says why and what to do."""


def run_dir(out: Path) -> Path:
    return out / "run"


def server_cpus() -> str:
    """The cores servers are pinned to (SERVEBENCH_SERVER_CPUS; by default core 0 of two or more)."""
    if "SERVEBENCH_SERVER_CPUS" in os.environ:
        return os.environ["SERVEBENCH_SERVER_CPUS"]
    return "0" if (os.cpu_count() or 1) >= 2 else ""


def cores_refusal(spec: ServerSpec) -> str | None:
    """Why a stack of several workers cannot be measured here (None when it can): each worker
    needs a server core of its own, and the client one outside them, or the figures would be the
    workers and the client taking turns on shared cores."""
    if spec.workers <= 1:
        return None
    cpus = server_cpus()
    machine = set(os.sched_getaffinity(0))
    server = parse_cpus(cpus) if cpus else machine
    if len(server) >= spec.workers and machine - server:
        return None
    return (
        f"{spec.id} runs {spec.workers} workers, one per server core, and needs {spec.workers} server cores and "
        f"one more for the client; here the server gets {len(server)} ({'cores ' + cpus if cpus else 'unpinned'}) "
        f"of {len(machine)}. On a machine with {spec.workers + 1} or more cores, run it with "
        f"SERVEBENCH_SERVER_CPUS=0-{spec.workers - 1} (docs/servers.md, 'Workers beyond one core')"
    )


def _ort_dylib() -> str:
    if os.environ.get("ORT_DYLIB_PATH"):
        return os.environ["ORT_DYLIB_PATH"]
    from servebench.ort_dylib import ort_dylib_path

    try:
        return str(ort_dylib_path())
    except FileNotFoundError as exc:
        raise LaunchError(
            f"cannot find libonnxruntime in the Python environment ({exc}); run scripts/bootstrap.sh"
        ) from None


def record_models(spec: ServerSpec, models_dir: Path) -> list[registry.ModelSpec]:
    """The models of params/models.yaml the server serves on the record API: none when the models
    folder has no preprocessing and none of their files (a run of model packs alone), else all of
    them, so that a missing file stops the server with its name."""
    served = spec.serves(registry.models())
    if not (models_dir / "preprocess.json").is_file() and not any((models_dir / m.file).is_file() for m in served):
        return []
    return served


def venv(spec: ServerSpec) -> Path:
    """The Python environment the stack runs in: its own when its description names one."""
    return OWN_VENVS / spec.environment_dir if spec.environment else VENV


def _placeholders(spec: ServerSpec, host: str, port: int, models_dir: Path) -> dict[str, str]:
    values = {
        "root": str(PROJECT_ROOT),
        "servers": str(registry.SERVERS_DIR),
        "dir": str(spec.dir),
        "venv": str(venv(spec)),
        "host": host,
        "port": str(port),
        "models_dir": str(models_dir),
        "models": registry.model_files(record_models(spec, models_dir)),
        "packs": registry.format_files(registry.pack_files(models_dir)) if "onnx" in spec.formats else "",
    }
    used = " ".join([*spec.command, *spec.env.values(), spec.cwd or ""])
    if "{ort_dylib}" in used:
        values["ort_dylib"] = _ort_dylib()
    return values


def _fill(text: str, values: dict[str, str], spec: ServerSpec) -> str:
    try:
        return text.format(**values)
    except KeyError as exc:
        raise LaunchError(f"{spec.dir / registry.DESCRIPTION}: unknown placeholder {exc} in {text!r}") from None


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, port)) == 0


def alive(pid: int) -> bool:
    """Running, and not a zombie: a killed server whose parent has not reaped it yet still answers
    signal 0, but it will never answer a request."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _healthy(url: str) -> bool:
    """Whether `url` answers 200. Anything else is not yet: a refused connection, an error status,
    or no HTTP at all (another program's gRPC that took the port, answering in HTTP/2 frames)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (OSError, ValueError, http.client.HTTPException):
        return False


def log_tail(path: str | Path, lines: int = 20) -> str:
    """The last lines of a server's log, for the message of a failure; empty when unreadable."""
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _raise_open_files() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = OPEN_FILES if hard == resource.RLIM_INFINITY else min(OPEN_FILES, hard)
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def start(server_id: str, port: int, out: Path) -> dict[str, Any]:
    spec = registry.server(server_id)
    if why := cores_refusal(spec):
        raise LaunchError(why)
    if not 1 <= port <= 65535:
        raise LaunchError(f"port must be 1-65535, got {port}")
    host = os.environ.get("SERVEBENCH_HOST") or "127.0.0.1"
    given = os.environ.get("SERVEBENCH_MODELS_DIR")
    models_dir = Path(given) if given else out / "models"
    if not models_dir.is_dir():
        raise LaunchError(
            f"{server_id}: models directory {models_dir} does not exist: run ./run_all.sh (or notebooks 01-03) first"
        )
    models_dir = models_dir.resolve()
    timeout = float(os.environ.get("SERVEBENCH_START_TIMEOUT") or spec.start_timeout)
    runs = run_dir(out)
    runs.mkdir(parents=True, exist_ok=True)
    pidfile, log = runs / f"{server_id}.pid", runs / f"{server_id}.log"
    running = pidfile.read_text().strip() if pidfile.is_file() else ""
    if running.isdigit() and alive(int(running)):
        raise LaunchError(f"{server_id} is already running (pid {running}); stop it with servers/stop.sh {server_id}")
    if port_in_use(host, port):
        raise LaunchError(f"{server_id}: port {port} on {host} is already in use; choose another port")

    values = _placeholders(spec, host, port, models_dir)
    command = [_fill(arg, values, spec) for arg in spec.command]
    if not Path(command[0]).is_file():
        raise LaunchError(f"{server_id}: {command[0]} not found; run scripts/bootstrap.sh")
    cpus = server_cpus()
    pinned = ["taskset", "-c", cpus, *command] if cpus else command
    env = {
        **os.environ,
        "SERVEBENCH_SERVER_ID": server_id,
        "SERVEBENCH_MODELS_DIR": str(models_dir),
        "SERVEBENCH_MODELS": values["models"],
        "SERVEBENCH_PACKS": values["packs"],
        "SERVEBENCH_HOST": host,
        "SERVEBENCH_WORKERS": str(spec.workers),
        "PORT": str(port),
        "PYTHONUNBUFFERED": "1",
        **{name: _fill(value, values, spec) for name, value in spec.env.items()},
    }
    cwd = _fill(spec.cwd, values, spec) if spec.cwd else None

    _raise_open_files()
    started = time.perf_counter()
    with open(log, "wb") as log_file:
        process = subprocess.Popen(
            pinned, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, env=env, cwd=cwd,
            start_new_session=True,
        )  # fmt: skip
    pidfile.write_text(f"{process.pid}\n")
    try:
        deadline = time.monotonic() + timeout
        url = f"http://{host}:{port}{spec.health}" if ":" not in host else f"http://[{host}]:{port}{spec.health}"
        while not _healthy(url):
            if process.poll() is not None:
                raise LaunchError(
                    f"{server_id} failed to start (exit {process.returncode} before {spec.health} answered). "
                    f"Last lines of {log}:\n{log_tail(log)}"
                )
            if time.monotonic() > deadline:
                raise LaunchError(
                    f"{server_id} did not answer {spec.health} on {host}:{port} within {timeout:g}s. "
                    f"Last lines of {log}:\n{log_tail(log)}"
                )
            time.sleep(0.05)
    except BaseException:
        _stop_group(process.pid, spec, values)
        pidfile.unlink(missing_ok=True)
        raise
    record = {
        "id": server_id,
        "pid": process.pid,
        "host": host,
        "port": port,
        "cpus": cpus,
        "startup_seconds": round(time.perf_counter() - started, 3),
        "log": str(log),
        "command": " ".join(command),
    }
    (runs / f"{server_id}.json").write_text(json.dumps(record) + "\n")
    return record


def _stop_group(pid: int, spec: ServerSpec, values: dict[str, str] | None = None) -> None:
    """SIGTERM to the server's whole session, SIGKILL after a grace period, then the description's
    own stop command for what a framework starts outside that session."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + STOP_GRACE_S
        while time.monotonic() < deadline and _group_alive(pid):
            time.sleep(0.05)
        if not _group_alive(pid):
            break
    if spec.stop:
        values = values or {"venv": str(venv(spec)), "root": str(PROJECT_ROOT), "dir": str(spec.dir)}
        subprocess.run([_fill(arg, values, spec) for arg in spec.stop], capture_output=True, timeout=60, check=False)


def _group_alive(pgid: int) -> bool:
    for process in psutil.process_iter(["status"]):
        with contextlib.suppress(psutil.Error):
            if os.getpgid(process.pid) == pgid and process.info["status"] != psutil.STATUS_ZOMBIE:
                return True
    return False


def stop(server_id: str, out: Path) -> bool:
    """Stop a server started by `start`; False when it was not running."""
    spec = registry.server(server_id)
    pidfile = run_dir(out) / f"{server_id}.pid"
    if not pidfile.is_file():
        return False
    text = pidfile.read_text().strip()
    if text.isdigit():
        _stop_group(int(text), spec)
    pidfile.unlink(missing_ok=True)
    return True


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    # SIGTERM while a server is coming up must take it down too, as Ctrl-C does.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    out = out_dir()
    usage = "usage: servers/start.sh ID PORT | servers/stop.sh ID|--all"
    try:
        if len(args) == 3 and args[0] == "start":
            if not args[2].isdigit():
                raise LaunchError(f"port must be 1-65535, got '{args[2]}'")
            info = start(args[1], int(args[2]), out)
            print(
                f"{args[1]} ready on http://{info['host']}:{info['port']} (pid {info['pid']}, "
                f"cpus {info['cpus'] or 'all'}, start-up {info['startup_seconds']}s)"
            )
            return 0
        if len(args) == 2 and args[0] == "stop":
            ids = list(registry.servers()) if args[1] == "--all" else [args[1]]
            for server_id in ids:
                if stop(server_id, out):
                    print(f"{server_id} stopped")
                elif args[1] != "--all":
                    print(f"{server_id} is not running")
            return 0
    except (LaunchError, RegistryError) as exc:
        print(exc, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    print(f"{usage}\n  ids: {' '.join(registry.servers())}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
