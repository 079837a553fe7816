"""The parameter profiles in params/, and the framework × model matrix the descriptions give."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from servebench import launch, registry
from servebench.paths import PROJECT_ROOT
from servebench.registry import ServerSpec

PARAMS_DIR = PROJECT_ROOT / "params"
DEFAULT_PROFILE = PARAMS_DIR / "default.yaml"


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


class ProfileError(ValueError):
    """A profile that cannot be read; the message names the file and the fix."""


def _read_profile(path: Path) -> dict[str, Any]:
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ProfileError(f"profile {path} not found: give a YAML file such as {DEFAULT_PROFILE}") from None
    except yaml.YAMLError as exc:
        raise ProfileError(f"profile {path} is not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise ProfileError(f"profile {path} must be a mapping of settings, as {DEFAULT_PROFILE} is")
    parent = doc.pop("extends", None)
    if parent:
        return _merge(_read_profile(path.parent / parent), doc)
    return doc


def load_profile(path: Path) -> dict[str, Any]:
    """A profile YAML, with `extends:` resolved relative to it, over the default profile: the one
    source of every setting, which the notebooks' parameters cells repeat (tests/test_settings.py)."""
    profile = _read_profile(path)
    if Path(path).resolve() == DEFAULT_PROFILE.resolve():
        return profile
    return _merge(_read_profile(DEFAULT_PROFILE), profile)


def notebook_parameters(profile: dict[str, Any], notebook: str, declared: set[str]) -> dict[str, Any]:
    """What papermill passes to `notebook`: the common values it declares, then its own section."""
    common = {k: v for k, v in profile.get("common", {}).items() if k in declared}
    own = profile.get("notebooks", {}).get(notebook) or {}
    return {**common, **own}


@dataclass(frozen=True)
class Combination:
    framework: str
    model: str

    @property
    def key(self) -> str:
        return f"{self.framework}__{self.model}"


@dataclass(frozen=True)
class Matrix:
    """Which server serves which models: the descriptions under servers/ and params/models.yaml."""

    frameworks: dict[str, ServerSpec]
    models: dict[str, str]
    packs: tuple[registry.ModelSpec, ...] = ()

    @classmethod
    def load(cls, packs: tuple[registry.ModelSpec, ...] = ()) -> Matrix:
        """The servers, the models of params/models.yaml and the run's model packs (ONNX)."""
        specs = [*registry.models(), *packs]
        return cls(dict(registry.servers()), {m.name: m.label for m in specs}, packs)

    def served(self, framework: str) -> list[str]:
        """The models a stack is benchmarked on: those of its formats, and of those only the model
        packs when it serves the Open Inference Protocol alone (the Titanic models are benchmarked
        on the record API)."""
        spec = self.frameworks[framework]
        specs = [m for m in (*registry.models(), *self.packs) if m.pack or "record" in spec.apis]
        return [m.name for m in spec.serves(specs) if m.name in self.models]

    def combinations(
        self, frameworks: list[str] | None = None, models: list[str] | None = None, variants: bool = False
    ) -> list[Combination]:
        """Servers in registry order; named frameworks include the `extra` ones and those of more
        workers than the machine has server cores for; `variants` adds the `extra` ones to the
        default."""
        for name in frameworks or []:
            if name not in self.frameworks:
                raise ValueError(f"unknown framework '{name}' (one of {', '.join(self.frameworks)})")
        for name in models or []:
            if name not in self.models:
                raise ValueError(f"unknown model '{name}' (one of {', '.join(self.models)})")
        # By default the regular stacks this machine's cores can measure (servebench.launch.cores_refusal);
        # a named one that it cannot is refused by the launcher, saying why.
        chosen = frameworks or [
            f
            for f, spec in self.frameworks.items()
            if (variants or not spec.extra) and launch.cores_refusal(spec) is None
        ]
        return [
            Combination(f, m)
            for f in self.frameworks
            if f in chosen
            for m in self.served(f)
            if not models or m in models
        ]

    def label(self, framework: str) -> str:
        spec = self.frameworks.get(framework)
        return spec.label if spec else framework
