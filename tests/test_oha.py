"""oha's JSON read into the figures the report uses: counts per status and error, achieved rate
of 2xx answers, latency percentiles (ms) of the 2xx answers only; and the command line."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from servebench.bench import oha
from servebench.bench.oha import Run, command, summarize


def report(codes: dict[str, int], errors: dict[str, int], total_s: float = 2.0) -> dict:
    return {
        "summary": {"total": total_s, "average": 0.001, "slowest": 0.004},
        "latencyPercentiles": {"p50": 0.9, "p99": 0.9},  # all answers: never used when 2xx ones are there
        "latencyPercentilesSuccessful": {"p50": 0.001, "p90": 0.002, "p99": 0.003, "p99.9": 0.004},
        "statusCodeDistribution": codes,
        "errorDistribution": errors,
    }


def test_open_loop_counts_and_rates() -> None:
    run = Run("http://x/predict/m", connections=64, duration_s=2.0, rate=1000.0)
    s = summarize(run, report({"200": 1990, "503": 5}, {"connection closed": 5}, total_s=2.1))
    assert s["mode"] == "open" and s["requests"] == 2000 and s["ok"] == 1990 and s["errors"] == 10
    assert s["server_errors"] == 5 and s["error_kinds"] == {"HTTP 503": 5, "connection closed": 5}
    assert s["achieved_rate"] == pytest.approx(995.0) and s["sent_rate"] == pytest.approx(1000.0)
    assert (s["p50"], s["p90"], s["p99"], s["p99_9"]) == pytest.approx((1.0, 2.0, 3.0, 4.0))


def test_no_answer_has_no_latency() -> None:
    s = summarize(Run("http://x/health", requests=10), report({}, {"connection refused": 10}))
    assert s["ok"] == 0 and s["errors"] == 10 and math.isnan(s["p50"]) and s["achieved_rate"] == 0.0


def test_command_paces_open_loop_with_latency_correction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(oha, "oha_path", lambda: Path("/bin/oha"))
    open_loop = command(Run("http://x/p", connections=64, duration_s=5, rate=2000, bodies=Path("b.jsonl")), "1")
    assert open_loop[:3] == ["taskset", "-c", "1"]
    assert {"-q", "2000", "--latency-correction", "--wait-ongoing-requests-after-deadline", "-Z"} <= set(open_loop)
    sequential = command(Run("http://x/health", connections=1, requests=300))
    assert "-q" not in sequential and sequential[sequential.index("-n") + 1] == "300"
    assert Run("http://x/health", connections=1, requests=300).mode == "sequential"
