"""The servers and the models, as data: one description per folder `servers/<id>/server.yaml`,
and the model list `params/models.yaml`. Everything that needs a server id or a model name reads
it from here."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from servebench.paths import PROJECT_ROOT

SERVERS_DIR = PROJECT_ROOT / "servers"
MODELS_FILE = PROJECT_ROOT / "params" / "models.yaml"
DESCRIPTION = "server.yaml"
# The report groups stacks by kind, in this order.
GROUPS = ("web framework", "serving framework", "rust")
APIS = ("record", "v2")


class RegistryError(ValueError):
    """A description or model list that cannot be used, naming the file."""


@dataclass(frozen=True)
class ModelSpec:
    name: str
    label: str
    file: str
    format: str
    # A model pack (servebench.packs): served over the Open Inference Protocol only.
    pack: bool = False
    # A trained model: the notebook that trains it (run with `model` = its name), and the
    # parameters it gets over its profile's section of that notebook.
    notebook: str | None = None
    params: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    # An export: the trained model it is made from by notebook 03 (servebench.native_models).
    source: str | None = None


@dataclass(frozen=True)
class ServerSpec:
    """A server's description: what it is (for the report) and how to start it (for the launcher)."""

    id: str
    dir: Path
    label: str
    group: str
    language: str
    framework: str
    http_server: str
    runtime: str
    approach: str
    formats: tuple[str, ...]
    command: tuple[str, ...]
    production: bool = True
    extra: bool = False
    cwd: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    stop: tuple[str, ...] = ()
    packages: tuple[str, ...] = ()
    crates: tuple[str, ...] = ()
    system_packages: tuple[str, ...] = ()
    deviations: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Transport attacks (tests/test_transport.py, and the connection burst of tests/test_load.py,
    # by test name without `test_`, or `name[case]` for one case) this stack, as
    # deployed, does not withstand: name -> why. The suite skips them with that reason and the
    # report lists them beside the contract deviations.
    transport_limits: dict[str, str] = field(default_factory=dict)
    # Another server running the same app on a different server layer (Granian, or Ray Serve's
    # proxy, in place of uvicorn): the report sets the two side by side, as ratios.
    baseline: str | None = None
    # Why the stack cannot stay up idle beside the others while they are measured (its idle work,
    # measured, slows a server on the same core): it is then started for its own turn in each
    # trial of a run and stopped after it (servebench.servers.ServerPool). Empty: it stays up.
    own_slot: str = ""
    # Seconds the launcher waits for /health (SERVEBENCH_START_TIMEOUT overrides it): a stack
    # that starts a cluster or several processes needs more than a single process.
    start_timeout: float = 120.0
    notes: str = ""
    # A variant: the stack (`variant_of`, its default) with some settings changed, declared under
    # `variants:` in that stack's description; `differs` says what is changed.
    variant_of: str | None = None
    differs: str = ""
    # A lock file in the stack's folder: the stack runs in an environment of its own made from it
    # (.venvs/<folder>/, scripts/bootstrap.sh), for pins that conflict with the shared .venv.
    environment: str | None = None
    # The path the launcher waits for (200) before a started server counts as up.
    health: str = "/health"
    # What the stack serves: the record API (`/predict/{model}`, `/health`) and the Open
    # Inference Protocol (`/v2/...`). A server built for the protocol that takes no custom route
    # serves `v2` alone; the record API's checks and benchmarks then pass it by.
    apis: tuple[str, ...] = ("record", "v2")
    # Processes (or replicas) serving requests, one per server core: the launcher gives the server
    # SERVEBENCH_WORKERS and refuses to start it where the machine has not that many cores for the
    # server and one more for the client.
    workers: int = 1

    @property
    def environment_dir(self) -> str:
        """The folder of the stack's own environment under the project's .venvs/, when it has one."""
        return self.dir.name

    def serves(self, models: list[ModelSpec]) -> list[ModelSpec]:
        return [m for m in models if m.format in self.formats]


_REQUIRED = (
    "id",
    "label",
    "group",
    "language",
    "framework",
    "http_server",
    "runtime",
    "approach",
    "formats",
    "command",
)


# What a variant may not change: it is the same stack.
_FIXED = ("id", "group", "language", "framework", "formats", "variant_of", "variants")


def _servers(path: Path) -> list[ServerSpec]:
    """The stack a description declares, then each of its `variants:`: the same description with
    the keys a variant gives in place of the stack's, its id `<stack>-<name>` and, unless it names
    another, the stack as its `baseline` (the report sets the two side by side)."""
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise RegistryError(f"cannot read {path}: {exc}") from None
    variants = doc.pop("variants", None) or []
    found = [_server(path, dict(doc))]
    for variant in variants:
        if not isinstance(variant, dict) or "name" not in variant or "differs" not in variant:
            raise RegistryError(f"{path}: each of `variants` needs a name and what it `differs` in")
        fixed = sorted(set(variant) & set(_FIXED))
        if fixed:
            raise RegistryError(f"{path}: variant {variant['name']!r} may not set {', '.join(fixed)}")
        name = variant.pop("name")
        own = {"baseline": doc["id"], **variant, "id": f"{doc['id']}-{name}", "variant_of": doc["id"]}
        found.append(_server(path, {**doc, **own}))
    return found


def _server(path: Path, doc: dict[str, Any]) -> ServerSpec:
    missing = [key for key in _REQUIRED if key not in doc]
    if missing:
        raise RegistryError(f"{path}: missing {', '.join(missing)}")
    if doc["group"] not in GROUPS:
        raise RegistryError(f"{path}: group must be one of {', '.join(GROUPS)}, not {doc['group']!r}")
    known = {f for f in ServerSpec.__dataclass_fields__ if f != "dir"}
    unknown = sorted(set(doc) - known)
    if unknown:
        raise RegistryError(f"{path}: unknown keys {', '.join(unknown)}")
    doc.update(
        dir=path.parent,
        formats=tuple(doc["formats"]),
        command=tuple(str(a) for a in doc["command"]),
        stop=tuple(str(a) for a in doc.get("stop") or ()),
        packages=tuple(doc.get("packages") or ()),
        crates=tuple(doc.get("crates") or ()),
        system_packages=tuple(doc.get("system_packages") or ()),
        env={str(k): str(v) for k, v in (doc.get("env") or {}).items()},
        deviations=dict(doc.get("deviations") or {}),
        transport_limits={str(k): str(v) for k, v in (doc.get("transport_limits") or {}).items()},
        apis=tuple(doc.get("apis") or APIS),
    )
    if not isinstance(doc.get("workers", 1), int) or doc.get("workers", 1) < 1:
        raise RegistryError(f"{path}: workers must be a whole number of 1 or more, not {doc['workers']!r}")
    if not doc["apis"] or set(doc["apis"]) - set(APIS):
        raise RegistryError(f"{path}: apis must be some of {', '.join(APIS)}, not {list(doc['apis'])}")
    if doc.get("environment") and not (path.parent / doc["environment"]).is_file():
        raise RegistryError(f"{path}: environment {doc['environment']!r} is not a lock file in {path.parent}")
    return ServerSpec(**doc)


@cache
def servers(root: Path = SERVERS_DIR) -> dict[str, ServerSpec]:
    """Every described server, grouped by kind and then by id."""
    found = [spec for path in sorted(root.glob(f"*/{DESCRIPTION}")) for spec in _servers(path)]
    ids = [s.id for s in found]
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    if duplicated:
        raise RegistryError(f"server ids used twice under {root}: {', '.join(duplicated)}")
    found.sort(key=lambda s: (GROUPS.index(s.group), s.id))
    for s in found:
        if s.baseline is not None and (s.baseline not in ids or s.baseline == s.id):
            raise RegistryError(f"{s.dir / DESCRIPTION}: baseline {s.baseline!r} is not another server id")
    return {s.id: s for s in found}


def server(server_id: str) -> ServerSpec:
    known = servers()
    if server_id not in known:
        raise RegistryError(f"unknown server id '{server_id}' (one of: {', '.join(known)})")
    return known[server_id]


@cache
def models(path: Path = MODELS_FILE) -> list[ModelSpec]:
    try:
        doc = yaml.safe_load(path.read_text()) or {}
        found = [ModelSpec(**entry) for entry in doc["models"]]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise RegistryError(f"cannot read the model list {path}: {exc}") from None
    names = [m.name for m in found]
    trained = {m.name for m in found if m.notebook}
    for m in found:
        fault = None
        if names.count(m.name) > 1:
            fault = "is listed twice"
        elif m.notebook and m.source:
            fault = "has both a notebook (trained) and a source (exported): give one"
        elif not m.notebook and not m.source:
            fault = "needs a notebook that trains it or the source it is exported from"
        elif m.source and m.source not in trained:
            fault = f"is exported from {m.source!r}, which is not a trained model of the list"
        elif m.source and m.format != "onnx":
            fault = f"is an export, so its format is onnx, not {m.format!r}"
        if fault:
            raise RegistryError(f"{path}: model {m.name!r} {fault}")
    return found


def model(name: str) -> ModelSpec:
    known = {m.name: m for m in models()}
    if name not in known:
        raise RegistryError(f"unknown model {name!r} (one of: {', '.join(known)})")
    return known[name]


def trained_models() -> list[ModelSpec]:
    """The models the run trains, each by its own notebook."""
    return [m for m in models() if m.notebook]


def exported_models() -> list[ModelSpec]:
    """The ONNX exports notebook 03 makes of the trained models."""
    return [m for m in models() if m.source]


def model_files(specs: list[ModelSpec]) -> str:
    """`name=file,name=file`: how a server is told which models to load (SERVEBENCH_MODELS)."""
    return format_files({m.name: m.file for m in specs})


PACKS_DIR = "packs"
PACK_MODEL = "model.onnx"


def pack_files(models_dir: Path) -> dict[str, str]:
    """name → file (relative to `models_dir`) of the model packs the run placed in the models
    folder, `packs/<name>/model.onnx`: served over the Open Inference Protocol only."""
    return {
        path.parent.name: f"{PACKS_DIR}/{path.parent.name}/{PACK_MODEL}"
        for path in sorted((models_dir / PACKS_DIR).glob(f"*/{PACK_MODEL}"))
    }


def pack_spec(name: str, label: str) -> ModelSpec:
    return ModelSpec(name, label, f"{PACKS_DIR}/{name}/{PACK_MODEL}", "onnx", pack=True)


def format_files(files: dict[str, str]) -> str:
    return ",".join(f"{name}={file}" for name, file in files.items())


def parse_model_files(text: str) -> dict[str, str]:
    pairs = [item.split("=", 1) for item in text.split(",") if item.strip()]
    if any(len(pair) != 2 or not pair[0].strip() or not pair[1].strip() for pair in pairs):
        raise RegistryError(f"SERVEBENCH_MODELS must be name=file[,name=file...], got {text!r}")
    return {name.strip(): file.strip() for name, file in pairs}


if __name__ == "__main__":
    import sys

    # For the shell scripts: `onnx-models`, SERVEBENCH_MODELS for the Rust engine tests;
    # `packs DIR`, SERVEBENCH_PACKS for them (the packs of the models folder DIR, maybe none);
    # `system-packages`, the Debian packages the servers need, for the bootstrap; `environments`,
    # each stack's own environment as `<folder under .venvs> <lock file>`, for the bootstrap.
    command = sys.argv[1:]
    if command == ["onnx-models"]:
        print(model_files([m for m in models() if m.format == "onnx"]))
    elif len(command) == 2 and command[0] == "packs":
        print(format_files(pack_files(Path(command[1]))))
    elif command == ["system-packages"]:
        print(" ".join(sorted({p for spec in servers().values() for p in spec.system_packages})))
    elif command == ["environments"]:
        own = {(s.environment_dir, str(s.dir / s.environment)) for s in servers().values() if s.environment}
        for folder, lock in sorted(own):
            print(folder, lock)
    else:
        sys.exit("usage: python -m servebench.registry onnx-models | packs MODELS_DIR | system-packages | environments")
