"""The result files' schema, and the report's reading of them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from servebench.bench.vegeta import Attack, _frame, summarize_attack
from servebench.results import files as results
from servebench.results.derive import decomposition, sequential_summary


def sequential_frame(n: int = 20, fail: int = 2) -> pd.DataFrame:
    rows = [
        {
            "phase": "predict",
            "i": i,
            "measured": i >= 5,
            "status": 200,
            "ok": True,
            "latency_ms": 1.0 + i / 100,
            "server_ms": 0.2,
            "error": "",
        }
        for i in range(n)
    ]
    for row in rows[len(rows) - fail :]:
        row.update(status=0, ok=False, latency_ms=5000.0, error="ConnectError")
    return pd.DataFrame(rows)


def summary(**overrides: Any) -> dict[str, Any]:
    doc = {f: {} for f in results.OBSERVATION_FIELDS}
    doc.update(framework="fastapi", model="pytorch", status="ok", reason="", load=[])
    doc.update(overrides)
    return doc


def test_failed_requests_are_counted_not_averaged() -> None:
    s = sequential_summary(sequential_frame(), resamples=50, seed=0)
    assert s["failed"]["count"] == 2 and s["failed"]["first"] == "ConnectError"
    assert s["n"] == 13 and s["max"] < 2.0  # warm-up and failures both left out


def test_decomposition_adds_up() -> None:
    predict = sequential_frame(fail=0)
    health = predict.assign(latency_ms=0.5)
    parts = decomposition(predict, health)
    assert parts["client_floor_ms"] == 0.5 and parts["server_ms"] == pytest.approx(0.2)
    assert parts["client_floor_ms"] + parts["server_ms"] + parts["rest_ms"] == pytest.approx(parts["end_to_end_ms"])


def test_write_and_read_back(tmp_path: Path) -> None:
    load = pd.DataFrame(
        {
            "mode": ["closed"],
            "concurrency": [4],
            "target_rate": [0.0],
            "latency_ms": [1.0],
            "code": [200],
            "ok": [True],
            "error": [""],
            "sent_s": [0.0],
        }
    )
    path = results.write(
        tmp_path, "fastapi__pytorch", summary(parity={"max_abs_diff": float("nan")}), sequential_frame(), load
    )
    doc = json.loads(path.read_text())
    assert doc["parity"]["max_abs_diff"] is None  # NaN is written as null, never as invalid JSON
    assert set(results.OBSERVATION_FIELDS) <= set(doc)
    seq = results.read_sequential(tmp_path)
    assert list(seq.columns) == [*results.SEQUENTIAL_COLUMNS, "framework", "model"]
    assert set(seq["framework"]) == {"fastapi"}
    assert list(pd.read_parquet(tmp_path / "fastapi__pytorch.load.parquet").columns) == list(results.LOAD_COLUMNS)


def test_summary_schema_is_enforced(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="status"):
        results.write(tmp_path, "x__y", summary(status="fine"))
    bad = summary()
    del bad["parity"]
    with pytest.raises(ValueError, match="parity"):
        results.write(tmp_path, "x__y", bad)


def test_load_summary_separates_errors() -> None:
    encoded = "\n".join(
        json.dumps(r)
        for r in [
            {"code": 200, "latency": 1_000_000, "timestamp": "2026-01-01T00:00:00.000Z", "error": ""},
            {"code": 200, "latency": 3_000_000, "timestamp": "2026-01-01T00:00:00.500Z", "error": ""},
            {
                "code": 0,
                "latency": 30_000_000_000,
                "timestamp": "2026-01-01T00:00:00.600Z",
                "error": "connection refused",
            },
            {"code": 503, "latency": 2_000_000, "timestamp": "2026-01-01T00:00:00.700Z", "error": "503"},
        ]
    )
    s = summarize_attack(Attack("closed", 1.0, concurrency=2), _frame(encoded))
    assert s["requests"] == 4 and s["ok"] == 2 and s["errors"] == 2 and s["server_errors"] == 1
    assert s["max_ms"] == 3.0  # the 30 s failure is not a latency
    assert s["error_codes"] == {"0": 1, "503": 1}
    assert np.isclose(s["p50_ms"], 2.0)


def test_figures_are_derived_from_the_stored_observations_when_read(tmp_path: Path) -> None:
    """The observations hold no figure; reading them back derives native, capacity, the Python
    client's statistics and cost, so a report made again applies today's rules."""
    window = {"p50": 1.0, "p90": 1.5, "p99": 2.0, "p99_9": 2.5, "mean_ms": 1.1, "requests": 10, "errors": 0}
    windows = {
        "predict": [{**window, "first_error": "", "round": r} for r in range(3)],
        "health": [{**window, "p50": 0.2, "first_error": "", "round": r} for r in range(3)],
    }
    ladder = [
        {"offered_rate": 500.0, "held": True, "cpu_ms_per_request": 0.4},
        {"offered_rate": 1000.0, "held": True, "cpu_ms_per_request": 0.5},
        {"offered_rate": 1414.0, "held": False, "cpu_ms_per_request": 0.6},
    ]
    cost = {"measured": True, "peak_rss_mb": 80.0, "cpu_s_sequential": 0.6, "sequential_requests": 1200}
    doc = summary(
        windows=windows,
        ladder=ladder,
        searches=[{"rate": 1189.0, "steps": []}],
        cost=cost,
        settings={"slo_p99_ms": 10.0, "bootstrap_resamples": 50, "seed": 0},
    )
    frame = pd.concat([sequential_frame(fail=0), sequential_frame(fail=0).assign(phase="health", latency_ms=0.3)])
    path = results.write(tmp_path, "fastapi__pytorch", doc, frame)
    stored = json.loads(path.read_text())
    assert not {"native", "capacity", "sequential", "decomposition"} & set(stored)
    got = results.read_summary(path)
    assert got["native"]["predict"]["p50"]["median"] == 1.0 and got["native"]["health"]["p50"]["median"] == 0.2
    assert got["capacity"]["ladder_rate"] == 1000.0 and got["capacity"]["rate"] == pytest.approx(1094.5)
    assert got["cost"]["cpu_ms_per_request_at_capacity"] == 0.5 and got["cost"]["cpu_s_per_1000"] == 0.5
    assert got["decomposition"]["client_floor_ms"] == 0.3 and got["sequential"]["n"] == 15
    # an endpoint that failed parity is read as stored: nothing of it is a figure
    bad = results.write(tmp_path, "flask__pytorch", summary(status="incorrect", reason="off"))
    assert "native" not in results.read_summary(bad)
