"""Starting and stopping servers from Python, through servers/start.sh and servers/stop.sh: each
server then runs outside this process, as it does when started by hand."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from servebench.launch import alive, log_tail
from servebench.paths import PROJECT_ROOT

SCRIPTS = PROJECT_ROOT / "servers"


class ServerError(Exception):
    """A server that would not start, with the script's explanation."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _script(name: str, *args: str, out: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SERVEBENCH_OUT": str(out)}
    return subprocess.run([str(SCRIPTS / name), *args], env=env, capture_output=True, text=True, check=False)


def start_server(framework: str, out: Path, port: int | None = None) -> dict[str, Any]:
    """Start `framework`; returns start.sh's record (pid, host, port, cpus, startup_seconds, log)."""
    started = _script("start.sh", framework, str(port or free_port()), out=out)
    if started.returncode != 0:
        raise ServerError(f"{framework} did not start: {started.stderr.strip()}")
    info: dict[str, Any] = json.loads((out / "run" / f"{framework}.json").read_text())
    info["base_url"] = f"http://{info['host']}:{info['port']}"
    return info


def stop_server(framework: str, out: Path) -> None:
    _script("stop.sh", framework, out=out)


@contextmanager
def running_server(framework: str, out: Path) -> Iterator[dict[str, Any]]:
    """A server on a free port, stopped however the block ends."""
    info = start_server(framework, out)
    try:
        yield info
    finally:
        stop_server(framework, out)


__all__ = ["ServerError", "alive", "free_port", "log_tail", "running_server", "start_server", "stop_server"]
