"""Documents the code cites exist: a reader sent to a file finds it."""

from __future__ import annotations

import re
import subprocess

from servebench.paths import PROJECT_ROOT as ROOT

# A document is cited by its path (docs/servers.md) or by a capitalised name (README.md); a bare
# lower-case name is a listing or a file the code writes.
CITED = re.compile(r"(?<![\w/.-])((?:[\w-]+/)+[\w-]+\.md|[A-Z][A-Z_-]*\.md)\b")


def test_every_cited_markdown_file_exists() -> None:
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    missing = set()
    for name in tracked:
        path = ROOT / name
        if path.suffix not in {".py", ".rs", ".sh", ".yaml", ".toml", ".md", ".ipynb"}:
            continue
        for cited in CITED.findall(path.read_text(errors="replace")):
            if not (ROOT / cited).is_file() and not (path.parent / cited).is_file():
                missing.add(f"{name} cites {cited}")
    assert not missing, sorted(missing)
