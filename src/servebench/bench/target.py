"""The server a benchmark notebook measures: the one the run started (or one running
elsewhere, `--target`), or, when the notebook is opened on its own, one it starts itself, reuses
when the cell is run again, and stops when the kernel exits."""

from __future__ import annotations

import atexit
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from servebench import registry
from servebench.bench.cpus import client_cpus, parse_cpus
from servebench.servers import alive, start_server, stop_server

# Servers this process started, by (framework, outputs folder): a re-run cell reuses its server.
_STARTED: dict[tuple[str, str], dict[str, Any]] = {}


@dataclass(frozen=True)
class Target:
    framework: str
    model: str
    base_url: str
    pid: int | None
    startup_seconds: float | None
    server_cpus: str | None
    client_cpus: str | None

    @property
    def health_url(self) -> str:
        """The server's cheapest route, the floor beside every window: /health, or the health path
        its description names (a stack serving the Open Inference Protocol alone)."""
        known = registry.servers().get(self.framework)
        return f"{self.base_url}{known.health if known else '/health'}"

    @property
    def local(self) -> bool:
        """Whether the server's process is known here: its cost can be measured."""
        return self.pid is not None


def _own_server(framework: str, out: Path) -> dict[str, Any]:
    """The server this kernel started before, a server of that id already running from this
    outputs folder (the notebook re-run after a kernel restart), or a new one."""
    key = (framework, str(out))
    info = _STARTED.get(key)
    if info and alive(int(info["pid"])):
        return info
    record = out / "run" / f"{framework}.json"
    if record.is_file():
        try:
            info = json.loads(record.read_text())
        except ValueError:
            info = None
        if info and alive(int(info.get("pid", 0))):
            info["base_url"] = f"http://{info['host']}:{info['port']}"
            return info
    info = start_server(framework, out)
    _STARTED[key] = info
    atexit.register(stop_server, framework, out)
    return info


def attach_or_start(
    framework: str,
    model: str,
    base_url: str | None,
    server_pid: int | None,
    startup_seconds: float | None,
    server_cpus: str | None,
    out: Path,
) -> Target:
    if base_url is None:
        info = _own_server(framework, out)
        base_url, server_pid = info["base_url"], int(info["pid"])
        startup_seconds, server_cpus = float(info["startup_seconds"]), str(info.get("cpus") or "")
    cpus = client_cpus(server_cpus or None)
    return Target(framework, model, base_url.rstrip("/"), server_pid, startup_seconds, server_cpus or None, cpus)


def running_target(framework: str, model: str, server: dict[str, Any]) -> Target:
    """The endpoint of a server the run started (or attached to): its launcher's record."""
    pid = int(server["pid"]) if server.get("pid") else None
    startup = float(server["startup_seconds"]) if server.get("startup_seconds") is not None else None
    cpus = str(server.get("cpus") or "") or None
    return Target(framework, model, str(server["base_url"]).rstrip("/"), pid, startup, cpus, client_cpus(cpus))


def pinning(target: Target) -> str:
    if target.client_cpus is None:
        return "client not pinned (fewer than two cores, or the server's cores unknown)"
    server = f"server on cores {target.server_cpus}" if target.server_cpus else "server's cores not known here"
    return f"client on cores {target.client_cpus}, {server}"


@contextmanager
def on_client_cores(target: Target) -> Iterator[str]:
    """Run the block's Python client on the client's cores, and give this thread its old
    affinity back afterwards: the kernel itself is never left pinned. (The load generators are
    pinned on their own command line with taskset.)"""
    if target.client_cpus is None:
        yield pinning(target)
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, parse_cpus(target.client_cpus))
    try:
        yield pinning(target)
    finally:
        os.sched_setaffinity(0, before)


class IncorrectPredictions(AssertionError):
    """The endpoint disagrees with the native model: it is not benchmarked."""
