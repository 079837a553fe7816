"""Everything the report reads from an outputs folder, gathered in one place."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from servebench import registry
from servebench.config import Matrix
from servebench.paths import metrics_dir, results_dir
from servebench.registry import GROUPS
from servebench.results import files as result_files
from servebench.stages import read_stages


@dataclass
class ReportData:
    matrix: Matrix
    summaries: list[dict[str, Any]]
    runs: list[dict[str, Any]]
    sequential: pd.DataFrame
    metrics: dict[str, dict[str, Any]]
    onnx_parity: dict[str, dict[str, Any]]
    soak: list[dict[str, Any]]
    generator: dict[str, Any] = field(default_factory=dict)
    # each model's runtime alone, in-process (results/inference.json), by model
    inference: dict[str, dict[str, Any]] = field(default_factory=dict)
    # the run's model packs: name → what they are (inputs → outputs; size), and how built-in ones were trained
    packs: dict[str, dict[str, Any]] = field(default_factory=dict)
    # seconds each stage of the run took (results/stages.json); the report's own is not in it yet
    stages: dict[str, float] = field(default_factory=dict)
    # the stack every other is compared with, as ratios on the same model (the report's `reference`)
    reference: str | None = None

    @property
    def ok(self) -> list[dict[str, Any]]:
        """The endpoints that passed parity and were measured, grouped by kind of stack."""
        return sorted([s for s in self.summaries if s["status"] == "ok"], key=self.order)

    def order(self, s: dict[str, Any]) -> tuple[int, int, int]:
        """Sort key: the stack's group, the stack (registry order), the model (models.yaml order)."""
        frameworks, models = list(self.matrix.frameworks), list(self.matrix.models)
        f, m = s["framework"], s["model"]
        return (
            GROUPS.index(self.group(f)) if self.group(f) in GROUPS else len(GROUPS),
            frameworks.index(f) if f in frameworks else len(frameworks),
            models.index(m) if m in models else len(models),
        )

    def group(self, framework: str) -> str:
        spec = self.matrix.frameworks.get(framework)
        return spec.group if spec else "elsewhere (--target)"

    def label(self, framework: str) -> str:
        return self.matrix.label(framework)

    def model_label(self, model: str) -> str:
        return self.matrix.models.get(model, model)

    @property
    def ok_keys(self) -> set[tuple[str, str]]:
        return {(s["framework"], s["model"]) for s in self.ok}


def _json(path: Path, default: Any) -> Any:
    return json.loads(path.read_text()) if path.is_file() else default


def _packs(out: Path) -> dict[str, dict[str, Any]]:
    from servebench.packs import PackError, load_pack
    from servebench.registry import PACK_MODEL, PACKS_DIR

    found = {}
    for model in sorted((out / "models" / PACKS_DIR).glob(f"*/{PACK_MODEL}")):
        try:
            pack = load_pack(model.parent)
        except PackError:
            continue
        training = _json(model.parent / "training.json", {})
        found[pack.name] = {"label": pack.label, "shape": pack.describe(), "rows": pack.rows, "training": training}
    return found


def load(out: Path, matrix: Matrix | None = None, reference: str | None = None) -> ReportData:
    results = results_dir(out)
    packs = _packs(out)
    if matrix is None:
        matrix = Matrix.load(tuple(registry.pack_spec(name, p["label"]) for name, p in packs.items()))
    metrics = {
        p.stem: json.loads(p.read_text())
        for p in metrics_dir(out).glob("*.json")
        if p.stem in {m.name for m in registry.trained_models()}
    }
    return ReportData(
        matrix=matrix,
        summaries=result_files.read_summaries(results),
        runs=result_files.read_runs(results),
        sequential=result_files.read_sequential(results),
        metrics=metrics,
        onnx_parity=_json(metrics_dir(out) / "onnx_parity.json", {}),
        soak=_json(results / "soak.json", []),
        generator=result_files.read_generator(results),
        inference={r["model"]: r for r in _json(results / "inference.json", []) if "error" not in r},
        packs=packs,
        stages=read_stages(results),
        reference=reference,
    )
