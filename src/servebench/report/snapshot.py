"""The README's snapshot of a real run: the report's summary chart and table, written under docs/.

.venv/bin/python -m servebench.report.snapshot [--out outputs] [--docs docs] [--reference fastapi]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib
import pandas as pd

matplotlib.use("Agg")

from servebench.config import DEFAULT_PROFILE, load_profile
from servebench.paths import PROJECT_ROOT, out_dir
from servebench.report import figures, tables
from servebench.report.data import load


def markdown(frame: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", help="outputs folder of the run (default outputs/)")
    parser.add_argument("--docs", type=Path, default=PROJECT_ROOT / "docs")
    parser.add_argument("--reference", help="the stack figures are also given as ratios to (default: the profile's)")
    args = parser.parse_args(argv)
    reference = args.reference or load_profile(DEFAULT_PROFILE)["notebooks"]["05_report"]["reference"]
    data = load(out_dir(args.out), reference=reference)
    chart = figures.summary_scatter(data)
    if chart is None:
        raise SystemExit(f"no endpoint was measured in {out_dir(args.out)}: nothing to snapshot")
    chart.savefig(args.docs / "headline.png", dpi=110, bbox_inches="tight")
    (args.docs / "headline.md").write_text(markdown(tables.summary_table(data).reset_index()))
    print(f"wrote {args.docs / 'headline.png'} and {args.docs / 'headline.md'}")


if __name__ == "__main__":
    main()
