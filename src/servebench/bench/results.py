"""The result files of one benchmarked combination, and reading them all back for the report.

Per combination `KEY` = `<framework>__<model>` under results/:
- KEY.sequential.parquet — one row per sequential request: phase (predict | health), i, measured,
  status, ok, latency_ms, server_ms, error;
- KEY.load.parquet — (older runs, vegeta) one row per load-generator request;
- KEY.summary.json — everything the report needs (SUMMARY_FIELDS), status first: the native
  single-request windows, the open-loop ladder and capacity, the closed-loop levels (`load`),
  the Python-client figures, cost.
runs.json, written by the orchestrator, says how each combination's run ended; generator.json
the load generator's self-measurement.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

SUMMARY_FIELDS = (
    "framework",
    "model",
    "status",
    "reason",
    "parity",
    "native",
    "ladder",
    "capacity",
    "sequential",
    "health",
    "server_time",
    "decomposition",
    "load",
    "cost",
    "settings",
    "environment",
)
STATUSES = ("ok", "incorrect", "failed")
SEQUENTIAL_COLUMNS = ("phase", "i", "measured", "status", "ok", "latency_ms", "server_ms", "error")
LOAD_COLUMNS = ("mode", "concurrency", "target_rate", "latency_ms", "code", "ok", "error", "sent_s")


def _clean(value: Any) -> Any:
    """JSON has no NaN: write null instead."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def validate_summary(summary: dict[str, Any]) -> None:
    missing = [f for f in SUMMARY_FIELDS if f not in summary]
    if missing:
        raise ValueError(f"summary lacks {missing}")
    if summary["status"] not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {summary['status']!r}")


def write(
    results_dir: Path,
    key: str,
    summary: dict[str, Any],
    sequential: pd.DataFrame | None = None,
    load: pd.DataFrame | None = None,
) -> Path:
    validate_summary(summary)
    results_dir.mkdir(parents=True, exist_ok=True)
    if sequential is not None:
        sequential.loc[:, list(SEQUENTIAL_COLUMNS)].to_parquet(results_dir / f"{key}.sequential.parquet", index=False)
    if load is not None:
        load.loc[:, list(LOAD_COLUMNS)].to_parquet(results_dir / f"{key}.load.parquet", index=False)
    path = results_dir / f"{key}.summary.json"
    path.write_text(json.dumps(_clean(summary), indent=2) + "\n")
    return path


def read_summary(path: Path) -> dict[str, Any]:
    summary: dict[str, Any] = json.loads(path.read_text())
    return summary


def read_summaries(results_dir: Path) -> list[dict[str, Any]]:
    return [read_summary(p) for p in sorted(results_dir.glob("*.summary.json"))]


def read_generator(results_dir: Path) -> dict[str, Any]:
    path = results_dir / "generator.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def read_runs(results_dir: Path) -> list[dict[str, Any]]:
    path = results_dir / "runs.json"
    return json.loads(path.read_text()) if path.is_file() else []


def read_sequential(results_dir: Path) -> pd.DataFrame:
    frames = []
    for path in sorted(results_dir.glob("*.sequential.parquet")):
        framework, model = path.name.split(".")[0].split("__")
        frames.append(pd.read_parquet(path).assign(framework=framework, model=model))
    return (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=[*SEQUENTIAL_COLUMNS, "framework", "model"])
    )
