"""./run_all.sh --quick end to end: the report covers every combination of the matrix, summary first."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from servebench.config import Matrix

from .conftest import ROOT

pytestmark = pytest.mark.e2e


def test_run_all_quick(tmp_path: Path) -> None:
    out = tmp_path / "out"
    run = subprocess.run(
        [str(ROOT / "run_all.sh"), "--quick", "--out", str(out)], capture_output=True, text=True, timeout=1500
    )
    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-3000:]
    runs = json.loads((out / "results" / "runs.json").read_text())
    matrix = Matrix.load()
    combos = matrix.combinations()
    assert len(runs) == len(combos) and all(r["status"] == "ok" for r in runs), runs
    html = (out / "report.html").read_text()
    assert str(out / "report.html") in run.stdout
    for framework in {c.framework for c in combos}:
        assert matrix.label(framework) in html
    # summary first, the original method in a section of its own, long tables collapsed
    headings = re.findall(r'<h2 id="([^"]+)"', html)
    assert headings[:2] == ["Summary", "Correctness"], headings
    assert "The-original-write-up's-method" in headings[2:], headings
    assert "<details>" in html and "Kernel is running over TCP" not in run.stdout + run.stderr
    generator = json.loads((out / "results" / "generator.json").read_text())
    assert generator["rows"] and all(r["offered_rate"] > 0 for r in generator["rows"])
    assert "<script src=" not in html and "data:image/png;base64" in html
    for name in ("pytorch.pt", "lightgbm.txt", "pytorch.onnx", "lightgbm.onnx", "preprocess.json", "reference.jsonl"):
        assert (out / "models" / name).is_file()
    metrics = {m: json.loads((out / "metrics" / f"{m}.json").read_text()) for m in ("pytorch", "lightgbm")}
    assert all(m["accuracy"] >= 0.78 for m in metrics.values()), metrics
