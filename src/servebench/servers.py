"""Starting and stopping servers from Python, in-process through servebench.launch (what
servers/start.sh and servers/stop.sh run too): each server runs in a session of its own, outside
this process, as it does when started by hand, and the launcher's record comes back as a value."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from servebench import launch
from servebench.launch import alive, log_tail
from servebench.registry import RegistryError


class ServerError(Exception):
    """A server that would not start, with the launcher's explanation."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(framework: str, out: Path, port: int | None = None) -> dict[str, Any]:
    """Start `framework`; returns the launcher's record (pid, host, port, cpus, startup_seconds,
    log) with its base_url."""
    try:
        info = launch.start(framework, port or free_port(), out)
    except (launch.LaunchError, RegistryError) as exc:
        raise ServerError(f"{framework} did not start: {exc}") from None
    host = f"[{info['host']}]" if ":" in str(info["host"]) else info["host"]
    return {**info, "base_url": f"http://{host}:{info['port']}"}


def stop_server(framework: str, out: Path) -> None:
    launch.stop(framework, out)


@contextmanager
def running_server(framework: str, out: Path) -> Iterator[dict[str, Any]]:
    """A server on a free port, stopped however the block ends."""
    info = start_server(framework, out)
    try:
        yield info
    finally:
        stop_server(framework, out)


__all__ = ["ServerError", "alive", "free_port", "log_tail", "running_server", "start_server", "stop_server"]
