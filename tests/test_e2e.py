"""./run_all.sh --quick end to end: the report covers all twelve combinations."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from .conftest import ROOT

pytestmark = pytest.mark.e2e


def test_run_all_quick(tmp_path: Path) -> None:
    out = tmp_path / "out"
    run = subprocess.run(
        [str(ROOT / "run_all.sh"), "--quick", "--out", str(out)], capture_output=True, text=True, timeout=1500
    )
    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-3000:]
    runs = json.loads((out / "results" / "runs.json").read_text())
    assert len(runs) == 12 and all(r["status"] == "ok" for r in runs), runs
    html = (out / "report.html").read_text()
    assert str(out / "report.html") in run.stdout
    for label in ("FastAPI (uvicorn)", "Flask (gunicorn)", "Rust axum + ort", "Rust axum + tract"):
        assert label in html
    assert "<script src=" not in html and "data:image/png;base64" in html
    for name in ("pytorch.pt", "lightgbm.txt", "pytorch.onnx", "lightgbm.onnx", "preprocess.json", "reference.jsonl"):
        assert (out / "models" / name).is_file()
    metrics = {m: json.loads((out / "metrics" / f"{m}.json").read_text()) for m in ("pytorch", "lightgbm")}
    assert all(m["accuracy"] >= 0.78 for m in metrics.values()), metrics
