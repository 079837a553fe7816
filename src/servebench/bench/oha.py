"""The native load generator, oha (crates.io; installed by scripts/bootstrap.sh into .tools/):
one connection sequentially (single-request latency without a Python client in the way),
closed loop (`-c C`: the throughput ceiling) and open loop (`-q RATE --latency-correction`:
requests leave on schedule whatever the server does, and each latency counts from its scheduled
send time, so queueing is never hidden). oha was chosen by measurement: see
`servebench.bench.generators` and the report's section on the load generator.

Each run is summarised from oha's JSON output: counts per status and per error, the achieved
rate of successful answers, and latency percentiles over the 2xx answers.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from servebench.bench.tools import tool_path, tool_version

# oha counts a request still in flight when the duration ends as this error; with
# `--wait-ongoing-requests-after-deadline` there are none, but a killed run may still show it.
DEADLINE = "aborted due to deadline"
PERCENTILES = {"p50": "p50", "p90": "p90", "p99": "p99", "p99_9": "p99.9"}


def oha_path() -> Path:
    return tool_path("oha")


def oha_version() -> str:
    return tool_version("oha")


def write_bodies(path: Path, bodies: Sequence[bytes]) -> Path:
    """One JSON body per line: oha's `-Z` picks a line at random for every request."""
    path.write_bytes(b"".join(b.replace(b"\n", b" ") + b"\n" for b in bodies))
    return path


@dataclass(frozen=True)
class Run:
    """One oha run. Exactly one of `requests` (count) and `duration_s` is set."""

    url: str
    connections: int = 1
    requests: int | None = None
    duration_s: float | None = None
    rate: float | None = None  # open loop when set
    bodies: Path | None = None  # a -Z file; GET when None
    timeout_s: float = 10.0

    @property
    def mode(self) -> str:
        if self.rate:
            return "open"
        return "sequential" if self.connections == 1 else "closed"


def command(run: Run, cpus: str | None = None) -> list[str]:
    cmd = [
        str(oha_path()),
        run.url,
        "--no-tui",
        "--output-format",
        "json",
        "--stats-success-breakdown",
        "-c",
        str(run.connections),
        "-t",
        f"{run.timeout_s}s",
        "--worker-threads",
        str(max(1, len(cpus.split(",")) if cpus else (os.cpu_count() or 1))),
    ]
    if run.requests:
        cmd += ["-n", str(run.requests)]
    else:
        cmd += ["-z", f"{run.duration_s}s", "--wait-ongoing-requests-after-deadline"]
    if run.rate:
        cmd += ["-q", f"{run.rate:g}", "--latency-correction"]
    if run.bodies is not None:
        cmd += ["-m", "POST", "-T", "application/json", "-Z", str(run.bodies)]
    if cpus:
        cmd = ["taskset", "-c", cpus, *cmd]
    return cmd


def run_oha(run: Run, cpus: str | None = None) -> dict[str, Any]:
    """Run oha and return its summary (see `summarize`)."""
    limit = (run.duration_s or 0) + run.timeout_s + 60 + (run.requests or 0) / 100
    done = subprocess.run(command(run, cpus), capture_output=True, text=True, timeout=limit, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"oha failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return summarize(run, json.loads(done.stdout))


def summarize(run: Run, report: dict[str, Any]) -> dict[str, Any]:
    """oha's JSON → requests sent, answered, errors (non-2xx and transport), achieved rate of 2xx
    answers over the run's own time, and latency percentiles (ms) of the 2xx answers."""
    codes = {str(k): int(v) for k, v in (report.get("statusCodeDistribution") or {}).items()}
    errors = {str(k): int(v) for k, v in (report.get("errorDistribution") or {}).items()}
    ok = sum(v for k, v in codes.items() if k.startswith("2"))
    sent = sum(codes.values()) + sum(errors.values())
    elapsed = float(report.get("summary", {}).get("total") or 0.0)
    pct = report.get("latencyPercentilesSuccessful") or report.get("latencyPercentiles") or {}

    def ms(key: str) -> float:
        value = pct.get(key)
        return float(value) * 1e3 if value is not None and ok else math.nan

    failed = {**{f"HTTP {k}": v for k, v in codes.items() if not k.startswith("2")}, **errors}
    # Over the scheduled time in open loop; over the run's own span otherwise.
    span = run.duration_s if run.rate and run.duration_s else elapsed
    out = {
        "mode": run.mode,
        "connections": run.connections,
        "offered_rate": float(run.rate or 0.0),
        "duration_s": float(run.duration_s or elapsed),
        "elapsed_s": elapsed,
        "requests": sent,
        "ok": ok,
        "errors": sent - ok,
        "server_errors": sum(v for k, v in codes.items() if k.startswith("5")),
        "error_kinds": failed,
        "first_error": next(iter(failed), ""),
        "achieved_rate": ok / span if span > 0 else 0.0,
        "sent_rate": sent / span if span > 0 else 0.0,
        "mean_ms": float(report.get("summary", {}).get("average") or math.nan) * 1e3 if ok else math.nan,
        "max_ms": float(report.get("summary", {}).get("slowest") or math.nan) * 1e3 if ok else math.nan,
    }
    out.update({name: ms(key) for name, key in PERCENTILES.items()})
    return out
