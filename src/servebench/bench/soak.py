"""The long load test: one server at high concurrency for a fixed time, with its memory
after warm-up compared with its memory after the run."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from servebench.bench.client import payloads, read_reference
from servebench.bench.cpus import client_cpus
from servebench.bench.resources import rss_bytes
from servebench.bench.vegeta import Attack, run_attack, summarize_attack, write_targets
from servebench.config import Matrix

WARMUP_S = 3.0


def run_soak(
    framework: str,
    server: dict[str, Any],
    concurrency: int,
    duration_s: float,
    reference: Path,
    timeout_s: float = 30.0,
) -> dict[str, Any]:
    """Warm up at the same concurrency, then hold it; every request and its status is counted,
    one not answered within `timeout_s` as an error."""
    model = Matrix.load().served(framework)[-1]
    url = f"{server['base_url']}/predict/{model}"
    rows = read_reference(reference)
    cpus = client_cpus(str(server.get("cpus") or "") or None)
    pid = int(server["pid"])
    with tempfile.TemporaryDirectory() as tmp:
        targets = write_targets(Path(tmp) / "targets.json", url, payloads(rows))
        run_attack(Attack("closed", WARMUP_S, concurrency=concurrency), targets, cpus, timeout_s)
        warm = rss_bytes(pid)
        attack = Attack("closed", duration_s, concurrency=concurrency)
        results = run_attack(attack, targets, cpus, timeout_s)
        after = rss_bytes(pid)
    summary = summarize_attack(attack, results)
    growth = 100.0 * (after - warm) / warm
    ok = summary["errors"] == 0 and summary["server_errors"] == 0 and growth <= 10.0
    return {
        "framework": framework,
        "concurrency": concurrency,
        "model": model,
        "status": "ok" if ok else "failed",
        "reason": "" if ok else f"errors {summary['errors']}, 5xx {summary['server_errors']}, RSS growth {growth:.1f}%",
        "rss_warm_mb": warm / 2**20,
        "rss_after_mb": after / 2**20,
        "rss_growth_pct": growth,
        **summary,
    }
