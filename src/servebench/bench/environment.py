"""The environment a benchmark ran in, recorded next to its numbers."""

from __future__ import annotations

import os
import platform
import subprocess
import tomllib
from importlib import metadata
from typing import Any

from servebench import registry
from servebench.bench.idle import recorded_state
from servebench.bench.oha import oha_version
from servebench.bench.vegeta import vegeta_version
from servebench.paths import PROJECT_ROOT

# The harness's and the models' own; each server's description adds the packages or crates of
# its stack.
PACKAGES = ("httpx", "torch", "lightgbm", "onnxruntime", "onnx", "numpy", "pandas", "papermill")


def _packages() -> list[str]:
    named = [p for spec in registry.servers().values() for p in spec.packages]
    return list(dict.fromkeys([*named, *PACKAGES]))


def _crates() -> set[str]:
    return {c for spec in registry.servers().values() for c in spec.crates}


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def crate_versions() -> dict[str, str]:
    lock = PROJECT_ROOT / "rust" / "Cargo.lock"
    if not lock.is_file():
        return {}
    packages = tomllib.loads(lock.read_text()).get("package", [])
    wanted = _crates()
    return {p["name"]: p["version"] for p in packages if p["name"] in wanted}


def git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "describe", "--always", "--dirty", "--abbrev=12"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def describe() -> dict[str, Any]:
    versions = {}
    for name in _packages():
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "cpu_idle": recorded_state(),
        "os": f"{platform.system()} {platform.release()}",
        "platform": platform.platform(),
        "python": platform.python_version(),
        "packages": versions,
        "crates": crate_versions(),
        "load_generator": f"oha {oha_version()} (vegeta {vegeta_version()} for the soak test)",
        "git_commit": git_commit(),
    }
