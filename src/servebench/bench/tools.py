"""The load generators scripts/bootstrap.sh installs into .tools/: where each is and which version."""

from __future__ import annotations

import shutil
from pathlib import Path

from servebench.paths import PROJECT_ROOT

TOOLS = PROJECT_ROOT / ".tools"


class LoadGeneratorMissing(RuntimeError):
    """A generator that is neither in .tools/ nor on PATH; the message says how to install it."""


def tool_path(name: str) -> Path:
    """`.tools/bin/NAME`, else NAME on PATH."""
    installed = TOOLS / "bin" / name
    if installed.is_file():
        return installed
    found = shutil.which(name)
    if not found:
        raise LoadGeneratorMissing(f"{name} not found: run scripts/bootstrap.sh (it installs {name} into .tools/)")
    return Path(found)


def tool_version(name: str) -> str:
    """The version bootstrap installed, from its stamp; "unknown" for one found on PATH."""
    stamp = TOOLS / f"{name}.version"
    return stamp.read_text().strip() if stamp.is_file() else "unknown"
