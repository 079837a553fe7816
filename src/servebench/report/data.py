"""Everything the report reads from an outputs folder, gathered in one place."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from servebench.bench import results as result_files
from servebench.config import Matrix
from servebench.paths import metrics_dir, results_dir


@dataclass
class ReportData:
    matrix: Matrix
    summaries: list[dict[str, Any]]
    runs: list[dict[str, Any]]
    sequential: pd.DataFrame
    metrics: dict[str, dict[str, Any]]
    onnx_parity: dict[str, dict[str, Any]]
    soak: list[dict[str, Any]]

    @property
    def ok(self) -> list[dict[str, Any]]:
        return [s for s in self.summaries if s["status"] == "ok"]


def _json(path: Path, default: Any) -> Any:
    return json.loads(path.read_text()) if path.is_file() else default


def load(out: Path, matrix: Matrix | None = None) -> ReportData:
    results = results_dir(out)
    metrics = {
        p.stem: json.loads(p.read_text()) for p in metrics_dir(out).glob("*.json") if p.stem in ("pytorch", "lightgbm")
    }
    return ReportData(
        matrix=matrix or Matrix.load(),
        summaries=result_files.read_summaries(results),
        runs=result_files.read_runs(results),
        sequential=result_files.read_sequential(results),
        metrics=metrics,
        onnx_parity=_json(metrics_dir(out) / "onnx_parity.json", {}),
        soak=_json(results / "soak.json", []),
    )
