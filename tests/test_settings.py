"""One source of settings: the default profile. The notebooks' parameters cells repeat its values,
so that a notebook opened alone in JupyterLab measures as ./run_all.sh does, and declare nothing
they do not use."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import papermill as pm
import pytest

from servebench.cli import main
from servebench.config import DEFAULT_PROFILE, PARAMS_DIR, ProfileError, load_profile, notebook_parameters
from servebench.notebooks import NOTEBOOKS
from servebench.settings import BenchmarkSettings, run_settings

NOTEBOOK_FILES = sorted(NOTEBOOKS.glob("*.ipynb"))


def _cells(path: Path) -> tuple[str, str]:
    """The parameters cell and the rest of the notebook's code."""
    cells = json.loads(path.read_text())["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    params = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1, f"{path.name}: one cell tagged 'parameters'"
    rest = "\n".join("".join(c["source"]) for c in code if c is not params[0])
    return "".join(params[0]["source"]), rest


@pytest.mark.parametrize("path", NOTEBOOK_FILES, ids=lambda p: p.stem)
def test_notebook_defaults_are_the_default_profile(path: Path) -> None:
    declared = pm.inspect_notebook(str(path))
    profile = load_profile(DEFAULT_PROFILE)
    wanted = notebook_parameters(profile, path.stem, set(declared))
    defaults = {name: ast.literal_eval(str(declared[name]["default"])) for name in wanted}
    assert defaults == wanted


@pytest.mark.parametrize("path", NOTEBOOK_FILES, ids=lambda p: p.stem)
def test_every_declared_parameter_is_used(path: Path) -> None:
    params, rest = _cells(path)
    declared = set(pm.inspect_notebook(str(path)))
    assert declared == {t.id for node in ast.parse(params).body for t in getattr(node, "targets", [])}
    unused = {name for name in declared if not re.search(rf"\b{name}\b", rest)}
    assert not unused, f"{path.stem} declares parameters it never uses: {sorted(unused)}"


def test_a_profile_is_read_over_the_default(tmp_path: Path) -> None:
    (tmp_path / "mine.yaml").write_text("notebooks:\n  04_benchmark:\n    windows: 7\n")
    profile = load_profile(tmp_path / "mine.yaml")
    default = load_profile(DEFAULT_PROFILE)
    mine, theirs = profile["notebooks"]["04_benchmark"], default["notebooks"]["04_benchmark"]
    assert mine["windows"] == 7 and mine["ladder_refine"] == theirs["ladder_refine"]
    assert profile["capacity_rounds"] == default["capacity_rounds"]
    assert load_profile(PARAMS_DIR / "quick.yaml")["notebooks"]["04_benchmark"]["windows"] == 3


def test_a_missing_or_broken_profile_is_a_message_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ProfileError, match="not found"):
        load_profile(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("notebooks: [unclosed\n")
    with pytest.raises(ProfileError, match="not valid YAML"):
        load_profile(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- a\n")
    with pytest.raises(ProfileError, match="mapping"):
        load_profile(tmp_path / "list.yaml")
    with pytest.raises(SystemExit) as exit_:
        main(["--profile", str(tmp_path / "missing.yaml")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "missing.yaml not found" in err and "Traceback" not in err


def test_the_typed_settings_are_the_benchmark_notebooks_parameters() -> None:
    """What Python code reads (BenchmarkSettings) and what notebook 04 declares are the same
    settings: the rest of its parameters say where the endpoint is."""
    where = {"framework", "model", "base_url", "server_pid", "startup_seconds", "server_cpus", "out_dir"}
    declared = set(pm.inspect_notebook(str(NOTEBOOKS / "04_benchmark.ipynb"))) - where - {"native_earlier"}
    assert declared == set(BenchmarkSettings.model_fields)
    settings = run_settings(load_profile(DEFAULT_PROFILE))
    assert settings.benchmark.model_dump() == {
        k: (tuple(v) if isinstance(v, list) else v)
        for k, v in notebook_parameters(load_profile(DEFAULT_PROFILE), "04_benchmark", declared).items()
    }
    assert run_settings(load_profile(PARAMS_DIR / "quick.yaml")).benchmark.windows == 3


def test_a_misspelt_or_ill_typed_setting_is_a_message_naming_it(tmp_path: Path) -> None:
    (tmp_path / "typo.yaml").write_text("notebooks:\n  04_benchmark:\n    window: 7\n")
    with pytest.raises(ProfileError, match="window"):
        run_settings(load_profile(tmp_path / "typo.yaml"))
    (tmp_path / "type.yaml").write_text("capacity_rounds: many\n")
    with pytest.raises(ProfileError, match="capacity_rounds"):
        run_settings(load_profile(tmp_path / "type.yaml"))
