from __future__ import annotations

import re
import shutil
from pathlib import Path

import papermill as pm
import pytest

from servebench import launch, registry
from servebench.config import PARAMS_DIR, Matrix, load_profile, notebook_parameters
from servebench.notebooks import NOTEBOOKS
from servebench.paths import PROJECT_ROOT as ROOT


def test_default_matrix_is_every_regular_server_times_the_models_of_its_formats() -> None:
    """On the record API: a stack serving the Open Inference Protocol alone gets the model packs."""
    matrix = Matrix.load()
    want = {
        (s.id, m.name)
        for s in registry.servers().values()
        if not s.extra and launch.cores_refusal(s) is None
        for m in registry.models()
        if m.format in s.formats and "record" in s.apis
    }
    combos = matrix.combinations()
    assert {(c.framework, c.model) for c in combos} == want and len(combos) == len(want)
    assert all(m in matrix.models for _, m in want)


def test_extra_frameworks_only_when_named() -> None:
    extra = [s for s in registry.servers().values() if s.extra]
    matrix = Matrix.load()
    assert not {c.framework for c in matrix.combinations()} & {s.id for s in extra}
    for spec in extra:
        model = spec.serves(registry.models())[0].name
        combos = matrix.combinations([spec.id], [model])
        assert [(c.framework, c.model) for c in combos] == [(spec.id, model)]
    with_variants = {c.framework for c in matrix.combinations(variants=True)}
    assert with_variants == {c.framework for c in matrix.combinations()} | {
        s.id for s in extra if launch.cores_refusal(s) is None
    }
    with pytest.raises(ValueError, match="unknown framework"):
        matrix.combinations(["django"])
    with pytest.raises(ValueError, match="unknown model"):
        matrix.combinations(None, ["xgboost"])


def test_a_server_folder_is_all_it_takes(tmp_path: Path) -> None:
    """A copy of a server folder with another id is a new server of the matrix."""
    shutil.copytree(registry.SERVERS_DIR / "fastapi", tmp_path / "fastapi-copy")
    description = tmp_path / "fastapi-copy" / "server.yaml"
    description.write_text(description.read_text().replace("id: fastapi", "id: fastapi-copy"))
    found = registry.servers.__wrapped__(tmp_path)
    # with its variants, named after it
    assert list(found) == ["fastapi-copy", "fastapi-copy-granian"]
    assert found["fastapi-copy"].dir == found["fastapi-copy-granian"].dir == tmp_path / "fastapi-copy"


def test_a_variant_is_its_stack_with_the_settings_it_changes(tmp_path: Path) -> None:
    (tmp_path / "s").mkdir()
    base = (registry.SERVERS_DIR / "fastapi" / "server.yaml").read_text().split("variants:")[0]
    variant = "variants:\n  - name: two\n    label: Two workers\n    differs: two workers\n    env: {WORKERS: '2'}\n"
    description = tmp_path / "s" / "server.yaml"
    description.write_text(base.replace("id: fastapi", "id: s") + variant)
    found = registry.servers.__wrapped__(tmp_path)
    stack, two = found["s"], found["s-two"]
    assert (two.variant_of, two.baseline, two.differs, two.env) == ("s", "s", "two workers", {"WORKERS": "2"})
    assert (two.command, two.formats, two.group) == (stack.command, stack.formats, stack.group)
    assert stack.variant_of is None and stack.env == {}
    description.write_text(base.replace("id: fastapi", "id: s") + variant + "    formats: [onnx]\n")
    with pytest.raises(registry.RegistryError, match="variant 'two' may not set formats"):
        registry.servers.__wrapped__(tmp_path)
    description.write_text(base + "variants:\n  - name: x\n    label: X\n")
    with pytest.raises(registry.RegistryError, match="needs a name and what it `differs` in"):
        registry.servers.__wrapped__(tmp_path)


def test_a_stack_may_have_an_environment_of_its_own(tmp_path: Path) -> None:
    """Its `{venv}` is .venvs/<folder>, made by the bootstrap from the lock the description names."""
    (tmp_path / "own").mkdir()
    base = (registry.SERVERS_DIR / "fastapi" / "server.yaml").read_text().split("variants:")[0]
    description = tmp_path / "own" / "server.yaml"
    description.write_text(base.replace("id: fastapi", "id: own") + "environment: requirements.lock\n")
    with pytest.raises(registry.RegistryError, match=r"environment 'requirements\.lock' is not a lock file"):
        registry.servers.__wrapped__(tmp_path)
    (tmp_path / "own" / "requirements.lock").write_text("numpy==2.2.6\n")
    own = registry.servers.__wrapped__(tmp_path)["own"]
    assert launch.venv(own) == ROOT / ".venvs" / "own"
    assert launch.venv(registry.server("fastapi")) == ROOT / ".venv"


def test_a_stack_names_the_apis_it_serves_and_its_health_path(tmp_path: Path) -> None:
    (tmp_path / "v2only").mkdir()
    base = (registry.SERVERS_DIR / "fastapi" / "server.yaml").read_text().split("variants:")[0]
    description = tmp_path / "v2only" / "server.yaml"
    description.write_text(base.replace("id: fastapi", "id: v2only") + "apis: [v2]\nhealth: /v2/health/ready\n")
    spec = registry.servers.__wrapped__(tmp_path)["v2only"]
    assert (spec.apis, spec.health) == (("v2",), "/v2/health/ready")
    assert registry.server("fastapi").apis == ("record", "v2") and registry.server("fastapi").health == "/health"
    # benchmarked on the model packs alone
    pack = registry.pack_spec("mine", "My model")
    matrix = Matrix(
        {"v2only": spec, "fastapi": registry.server("fastapi")},
        {"mine": "My model", **{m.name: m.label for m in registry.models()}},
        (pack,),
    )
    assert matrix.served("v2only") == ["mine"] and "pytorch_onnx" in matrix.served("fastapi")
    description.write_text(base.replace("id: fastapi", "id: v2only") + "apis: [grpc]\n")
    with pytest.raises(registry.RegistryError, match="apis must be some of record, v2"):
        registry.servers.__wrapped__(tmp_path)


def test_a_stack_of_several_workers_runs_only_where_each_has_a_core(monkeypatch: pytest.MonkeyPatch) -> None:
    """One server core per worker and one more for the client, or the launcher refuses, saying how
    to run it; the default matrix leaves it out where it would be refused."""
    spec = registry.server("flask-workers2")
    assert spec.workers == 2 and registry.server("flask").workers == 1
    monkeypatch.setattr(launch.os, "sched_getaffinity", lambda _pid: {0, 1})
    monkeypatch.setenv("SERVEBENCH_SERVER_CPUS", "0")
    assert "needs 2 server cores and one more for the client" in str(launch.cores_refusal(spec))
    with pytest.raises(launch.LaunchError, match="SERVEBENCH_SERVER_CPUS=0-1"):
        launch.start("flask-workers2", 8000, Path("/nonexistent"))
    assert "flask-workers2" not in {c.framework for c in Matrix.load().combinations()}
    monkeypatch.setenv("SERVEBENCH_SERVER_CPUS", "0-1")  # no core left for the client
    assert launch.cores_refusal(spec) is not None
    monkeypatch.setattr(launch.os, "sched_getaffinity", lambda _pid: {0, 1, 2, 3})
    assert launch.cores_refusal(spec) is None and launch.cores_refusal(registry.server("flask")) is None
    assert "flask-workers2" in {c.framework for c in Matrix.load().combinations()}


def test_bad_descriptions_name_their_file(tmp_path: Path) -> None:
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "server.yaml").write_text("id: broken\nlabel: x\n")
    with pytest.raises(registry.RegistryError, match=r"broken/server.yaml: missing"):
        registry.servers.__wrapped__(tmp_path)
    (tmp_path / "broken" / "server.yaml").write_text(
        (registry.SERVERS_DIR / "fastapi" / "server.yaml").read_text().replace("group: web framework", "group: cms")
    )
    with pytest.raises(registry.RegistryError, match="group must be one of"):
        registry.servers.__wrapped__(tmp_path)


def test_a_baseline_must_be_another_server(tmp_path: Path) -> None:
    for sid, baseline in (("a", "b"), ("b", "nowhere")):
        (tmp_path / sid).mkdir()
        text = (registry.SERVERS_DIR / "fastapi" / "server.yaml").read_text().replace("id: fastapi", f"id: {sid}")
        (tmp_path / sid / "server.yaml").write_text(f"{text}\nbaseline: {baseline}\n")
    with pytest.raises(registry.RegistryError, match=r"b/server.yaml: baseline 'nowhere'"):
        registry.servers.__wrapped__(tmp_path)


def test_transport_limits_name_attacks_of_the_transport_suite() -> None:
    """A recorded limit skips the attack of that name: a misspelt one would skip nothing."""
    attacks = {
        name.removeprefix("test_")
        for suite in ("test_transport.py", "test_load.py")
        for name in re.findall(r"^def (test_\w+)", (ROOT / "tests" / suite).read_text(), re.M)
    }
    for spec in registry.servers().values():
        # `attack` or one case of it, `attack[case]`
        assert {limit.split("[")[0] for limit in spec.transport_limits} <= attacks, spec.id


def test_model_files_round_trip() -> None:
    models = registry.models()
    assert registry.parse_model_files(registry.model_files(models)) == {m.name: m.file for m in models}
    with pytest.raises(registry.RegistryError):
        registry.parse_model_files("pytorch")


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
