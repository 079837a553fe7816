"""Starting and stopping servers from Python, in-process through servebench.launch (what
servers/start.sh and servers/stop.sh run too): each server runs in a session of its own, outside
this process, as it does when started by hand, and the launcher's record comes back as a value."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
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


def available_memory_bytes() -> int | None:
    """MemAvailable of /proc/meminfo (None where there is none)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


# Another server is started beside those kept up only while this much memory stays available;
# below it, the longest unused ones are stopped first.
MEMORY_RESERVE_BYTES = 4 * 2**30


class ServerPool:
    """Servers kept up, idle, across the trials of a run, so that a trial measures each endpoint
    without starting its server again: one start per server, unless it dies or memory runs short.

    A server whose description gives it `own_slot` (its idle work slows the others on their core)
    is started for each use and stopped after it. Before a start, servers kept up are stopped,
    the longest unused first, while less than `reserve` bytes of memory are available. `close`
    (or leaving the `with` block) stops every server still up."""

    def __init__(
        self,
        out: Path,
        own_slot: Callable[[str], bool],
        reserve: int = MEMORY_RESERVE_BYTES,
        start: Callable[[str, Path], dict[str, Any]] | None = None,
        stop: Callable[[str, Path], None] | None = None,
        memory: Callable[[], int | None] = available_memory_bytes,
    ) -> None:
        self.out, self.own_slot, self.reserve, self.memory = out, own_slot, reserve, memory
        self._start = start or (lambda framework, out: start_server(framework, out))
        self._stop = stop or stop_server
        self._up: dict[str, dict[str, Any]] = {}
        self._used: dict[str, float] = {}
        self.starts: dict[str, int] = {}

    def __enter__(self) -> ServerPool:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @contextmanager
    def use(self, framework: str) -> Iterator[dict[str, Any]]:
        """`framework`'s server, up for the block: the one kept up if it is still alive, else a
        fresh start."""
        info = self._up.get(framework)
        if info is not None and not alive(int(info["pid"])):
            self._drop(framework)
            info = None
        if info is None:
            self._make_room()
            try:
                info = self._start(framework, self.out)
            except ServerError:
                # Once more, on another free port: between the pick and the server's bind, a
                # process of another server (Ray's, binding ports of its own as it starts) can
                # take the port.
                info = self._start(framework, self.out)
            self.starts[framework] = self.starts.get(framework, 0) + 1
            if not self.own_slot(framework):
                self._up[framework] = info
        try:
            yield info
        finally:
            self._used[framework] = time.monotonic()
            if framework not in self._up:
                self._stop(framework, self.out)

    def _make_room(self) -> None:
        while self._up:
            free = self.memory()
            if free is None or free >= self.reserve:
                return
            self._drop(min(self._up, key=lambda f: self._used.get(f, 0.0)))

    def _drop(self, framework: str) -> None:
        self._up.pop(framework, None)
        self._stop(framework, self.out)

    def close(self) -> None:
        for framework in list(self._up):
            self._drop(framework)


__all__ = [
    "ServerError",
    "ServerPool",
    "alive",
    "free_port",
    "log_tail",
    "running_server",
    "start_server",
    "stop_server",
]
