"""What a run stores of each benchmarked endpoint, and reading it back for the report.

Per endpoint `KEY` = `<framework>__<model>` under results/, raw observations only:
- KEY.observations.json: status first (ok | incorrect | failed, with the reason), the parity
  check, the single-request windows (oha's summary of each, with its round), the open-loop
  ladder's steps, the capacity searches' steps, the closed-loop levels (`load`), the cost samples
  (memory, CPU time, start-up), the settings and the environment;
- KEY.sequential.parquet: one row per sequential request of the Python client: phase (predict |
  health), i, measured, status, ok, latency_ms, server_ms, error;
- KEY.windows.json: the single-request windows of the rounds before the benchmark;
- KEY.load.parquet: (older runs, vegeta) one row per load-generator request.
runs.json, written by the run, says how each endpoint's run ended; generator.json holds the load
generator's self-measurement. `read_summaries` derives the figures (servebench.results.derive)
when they are read, so a report made again applies the rules of the day to the same observations.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from servebench.results import derive

OBSERVATION_FIELDS = (
    "framework",
    "model",
    "status",
    "reason",
    "parity",
    "windows",
    "ladder",
    "searches",
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


def validate(observations: dict[str, Any]) -> None:
    missing = [f for f in OBSERVATION_FIELDS if f not in observations]
    if missing:
        raise ValueError(f"observations lack {missing}")
    if observations["status"] not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {observations['status']!r}")


def write(
    results_dir: Path,
    key: str,
    observations: dict[str, Any],
    sequential: pd.DataFrame | None = None,
    load: pd.DataFrame | None = None,
) -> Path:
    validate(observations)
    results_dir.mkdir(parents=True, exist_ok=True)
    if sequential is not None:
        sequential.loc[:, list(SEQUENTIAL_COLUMNS)].to_parquet(results_dir / f"{key}.sequential.parquet", index=False)
    if load is not None:
        load.loc[:, list(LOAD_COLUMNS)].to_parquet(results_dir / f"{key}.load.parquet", index=False)
    path = observations_path(results_dir, key)
    path.write_text(json.dumps(_clean(observations), indent=2) + "\n")
    return path


def observations_path(results_dir: Path, key: str) -> Path:
    return results_dir / f"{key}.observations.json"


def read_observations(path: Path) -> dict[str, Any]:
    observations: dict[str, Any] = json.loads(path.read_text())
    return observations


def read_summary(path: Path) -> dict[str, Any]:
    """One endpoint's observations with the figures derived from them (and from its sequential
    requests, when stored)."""
    observations = read_observations(path)
    sequential = path.with_name(path.name.replace(".observations.json", ".sequential.parquet"))
    frame = pd.read_parquet(sequential) if sequential.is_file() else None
    return derive.summary(observations, frame)


def read_summaries(results_dir: Path) -> list[dict[str, Any]]:
    """Every endpoint's summary; an older run's KEY.summary.json, which stored its figures, as it is
    (a run to --compare with)."""
    derived = [read_summary(p) for p in sorted(results_dir.glob("*.observations.json"))]
    older = [read_observations(p) for p in sorted(results_dir.glob("*.summary.json"))]
    return derived + older


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
