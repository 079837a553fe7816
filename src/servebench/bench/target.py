"""The server a benchmark notebook measures: the one the orchestrator started, or, when the
notebook is opened on its own, one it starts itself and stops when the kernel exits."""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass
from pathlib import Path

from servebench.bench.load import client_cpus, parse_cpus
from servebench.servers import start_server, stop_server


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
    def predict_url(self) -> str:
        return f"{self.base_url}/predict/{self.model}"

    @property
    def health_url(self) -> str:
        return f"{self.base_url}/health"


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
        info = start_server(framework, out)
        atexit.register(stop_server, framework, out)
        base_url, server_pid = info["base_url"], int(info["pid"])
        startup_seconds, server_cpus = float(info["startup_seconds"]), str(info["cpus"])
    cpus = client_cpus(server_cpus or None)
    return Target(framework, model, base_url.rstrip("/"), server_pid, startup_seconds, server_cpus or None, cpus)


def pin_client(target: Target) -> str:
    """Keep this process (and the load generator, via taskset) off the server's cores."""
    if target.client_cpus is None:
        return "not pinned (fewer than two cores, or no server cores given)"
    os.sched_setaffinity(0, parse_cpus(target.client_cpus))
    return f"client on cores {target.client_cpus}, server on cores {target.server_cpus}"


class IncorrectPredictions(AssertionError):
    """The endpoint disagrees with the native model: it is not benchmarked."""
