"""The short load test: every server holds 128 connections for 5 s from vegeta, each request
answered within 2 s, with no error and no 5xx, and its memory after the run stays within 10% of its
memory after warm-up; and 128 connections opened at once by oha are each answered within 2 s (a
server that accepts one new connection per turn of a busy event loop, as libuv does since 1.45,
kept some of them waiting past 2 s).
(./run_all.sh --soak runs the long one, concurrency 256 for 30 s, into the report.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from servebench.bench.client import payloads, read_reference
from servebench.bench.cpus import client_cpus
from servebench.bench.oha import Run, run_oha, write_bodies
from servebench.bench.soak import run_soak
from servebench.config import Matrix

from .conftest import Server

# The record API: a stack serving the Open Inference Protocol alone is passed by (conftest).
pytestmark = [pytest.mark.servers, pytest.mark.record_api]


CONNECTIONS = 128
TIMEOUT_S = 2.0


def test_short_load(server: Server, artifacts: dict[str, Any]) -> None:
    info = {**server.info, "base_url": server.base_url}
    result = run_soak(
        server.framework,
        info,
        concurrency=CONNECTIONS,
        duration_s=5,
        reference=artifacts["models"] / "reference.jsonl",
        timeout_s=TIMEOUT_S,
    )
    assert result["requests"] > 0
    assert result["errors"] == 0 and result["server_errors"] == 0, result
    assert result["rss_growth_pct"] <= 10.0, result
    assert result["status"] == "ok"


def test_connections_opened_at_once_are_each_answered_in_time(
    server: Server, artifacts: dict[str, Any], tmp_path: Path
) -> None:
    limit = server.spec.transport_limits.get("connections_opened_at_once_are_each_answered_in_time")
    if limit is not None:
        pytest.skip(f"{server.framework}: recorded transport limit: {limit}")
    model = Matrix.load().served(server.framework)[-1]
    bodies = write_bodies(tmp_path / "bodies.jsonl", payloads(read_reference(artifacts["models"] / "reference.jsonl")))
    run = Run(server.url(f"/predict/{model}"), CONNECTIONS, duration_s=3, bodies=bodies, timeout_s=TIMEOUT_S)
    result = run_oha(run, client_cpus(str(server.info.get("cpus") or "") or None))
    assert result["ok"] > 0 and result["errors"] == 0, (result["error_kinds"], result["max_ms"])
