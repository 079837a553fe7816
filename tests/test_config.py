from __future__ import annotations

import papermill as pm
import pytest

from servebench.config import PARAMS_DIR, Matrix, load_profile, notebook_parameters
from servebench.orchestrate import NOTEBOOKS


def test_default_matrix_is_the_twelve_endpoints() -> None:
    combos = Matrix.load().combinations()
    assert len(combos) == 12
    assert {c.framework for c in combos} == {"fastapi", "flask", "rust-ort", "rust-tract"}
    assert {c.model for c in combos if c.framework.startswith("rust")} == {"pytorch_onnx", "lightgbm_onnx"}


def test_extra_frameworks_only_when_named() -> None:
    combos = Matrix.load().combinations(["flask-dev"], ["pytorch"])
    assert [(c.framework, c.model) for c in combos] == [("flask-dev", "pytorch")]
    with pytest.raises(ValueError, match="unknown framework"):
        Matrix.load().combinations(["django"])


def test_quick_profile_extends_default() -> None:
    quick, default = load_profile(PARAMS_DIR / "quick.yaml"), load_profile(PARAMS_DIR / "default.yaml")
    assert quick["notebooks"]["04_benchmark"]["n_requests"] < default["notebooks"]["04_benchmark"]["n_requests"]
    assert quick["notebooks"]["02_train_lightgbm"] == default["notebooks"]["02_train_lightgbm"]


@pytest.mark.parametrize("profile", ["default.yaml", "quick.yaml"])
def test_every_profile_parameter_is_declared_by_its_notebook(profile: str) -> None:
    doc = load_profile(PARAMS_DIR / profile)
    for name in doc["notebooks"]:
        declared = set(pm.inspect_notebook(str(NOTEBOOKS / f"{name}.ipynb")))
        assert set(notebook_parameters(doc, name, declared)) <= declared, name
        assert set(doc["notebooks"][name] or {}) <= declared, name
