"""How long each stage of a run took: printed as each ends and kept in results/stages.json, which
the report's environment lists, so that a reader sees what a run of this profile costs."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

STAGES_FILE = "stages.json"
# Seconds run_all.sh spent bootstrapping before the orchestrator started, when it did.
BOOTSTRAP_ENV = "SERVEBENCH_BOOTSTRAP_S"


class StageClock:
    def __init__(self, results: Path) -> None:
        self.path = results / STAGES_FILE
        self.seconds: dict[str, float] = {}
        bootstrap = os.environ.get(BOOTSTRAP_ENV, "")
        if bootstrap.isdigit():
            self.seconds["bootstrap"] = float(bootstrap)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the block as `name`; it is recorded even when it fails or is interrupted."""
        start = time.monotonic()
        try:
            yield
        finally:
            elapsed = time.monotonic() - start
            self.seconds[name] = round(self.seconds.get(name, 0.0) + elapsed, 1)
            print(f"   ({name}: {elapsed:.0f} s)", flush=True)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps(self.seconds, indent=1) + "\n")


def read_stages(results: Path) -> dict[str, float]:
    path = results / STAGES_FILE
    return json.loads(path.read_text()) if path.is_file() else {}
