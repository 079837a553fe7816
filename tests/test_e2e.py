"""./run_all.sh --quick end to end: the report covers every combination of the matrix, summary first."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from servebench import registry
from servebench.builtin_packs import builtin_packs
from servebench.config import Matrix
from servebench.example_packs import write_example_packs
from servebench.launch import cores_refusal

from .conftest import ROOT

pytestmark = pytest.mark.e2e


def test_run_all_quick(tmp_path: Path) -> None:
    """The whole quick matrix, the built-in pack and a model pack of the reader's among them."""
    out = tmp_path / "out"
    pack = write_example_packs(tmp_path / "mine")["two_inputs"]
    run = subprocess.run(
        [str(ROOT / "run_all.sh"), "--quick", "--out", str(out), "--model-pack", str(pack)],
        capture_output=True,
        text=True,
        timeout=2700,
    )
    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-3000:]
    runs = json.loads((out / "results" / "runs.json").read_text())
    packs = [registry.pack_spec(p.name, p.label) for p in builtin_packs()] + [
        registry.pack_spec("two_inputs", "two_inputs")
    ]
    matrix = Matrix.load(tuple(packs))
    combos = matrix.combinations()
    assert len(runs) == len(combos) and all(r["status"] == "ok" for r in runs), runs
    onnx_stacks = {
        f
        for f, spec in matrix.frameworks.items()
        if "onnx" in spec.formats and not spec.extra and cores_refusal(spec) is None
    }
    assert {r["framework"] for r in runs if r["model"] == "two_inputs"} == onnx_stacks
    assert {r["framework"] for r in runs if r["model"] == "digits"} == onnx_stacks
    inference = {r["model"] for r in json.loads((out / "results" / "inference.json").read_text())}
    assert inference == {c.model for c in combos}
    html = (out / "report.html").read_text()
    assert str(out / "report.html") in run.stdout
    for framework in {c.framework for c in combos}:
        assert matrix.label(framework) in html
    # summary first, the original method in a section of its own, long tables collapsed
    headings = re.findall(r'<h2 id="([^"]+)"', html)
    assert headings[:2] == ["Summary", "Correctness"], headings
    assert "The-original-write-up's-method" in headings[2:], headings
    assert "<details>" in html and "Kernel is running over TCP" not in run.stdout + run.stderr
    # what each stage took, the bootstrap's included, printed and listed in the report's environment
    stages = json.loads((out / "results" / "stages.json").read_text())
    assert {"bootstrap", "training and export", "benchmarks"} <= set(stages), stages
    assert "(benchmarks: " in run.stdout and "stage: benchmarks" in html
    generator = json.loads((out / "results" / "generator.json").read_text())
    assert generator["rows"] and all(r["offered_rate"] > 0 for r in generator["rows"])
    assert "<script src=" not in html and "data:image/png;base64" in html
    # the packs named with their shapes
    assert "a FP32 [N, 3], b INT64 [N, 2] → score FP32 [N, 1], winner INT64 [N]" in html
    assert "features FP32 [N, 64] → probabilities FP32 [N, 10]" in html
    for name in ("pytorch.pt", "lightgbm.txt", "pytorch.onnx", "lightgbm.onnx", "preprocess.json", "reference.jsonl"):
        assert (out / "models" / name).is_file()
    metrics = {m: json.loads((out / "metrics" / f"{m}.json").read_text()) for m in ("pytorch", "lightgbm")}
    assert all(m["accuracy"] >= 0.78 for m in metrics.values()), metrics
