"""The short load test: every server holds concurrency 64 for 5 s from vegeta with no error and
no 5xx, and its memory after the run stays within 10% of its memory after warm-up.
(./run_all.sh --soak runs the long one, concurrency 256 for 30 s, into the report.)"""

from __future__ import annotations

from typing import Any

import pytest

from servebench.bench.soak import run_soak

from .conftest import Server

# The record API: a stack serving the Open Inference Protocol alone is passed by (conftest).
pytestmark = [pytest.mark.servers, pytest.mark.record_api]


def test_short_load(server: Server, artifacts: dict[str, Any]) -> None:
    info = {**server.info, "base_url": server.base_url}
    result = run_soak(
        server.framework, info, concurrency=64, duration_s=5, reference=artifacts["models"] / "reference.jsonl"
    )
    assert result["requests"] > 0
    assert result["errors"] == 0 and result["server_errors"] == 0, result
    assert result["rss_growth_pct"] <= 10.0, result
    assert result["status"] == "ok"
