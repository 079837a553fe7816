"""Ratios to the reference stack, pair by pair within a round, so that drift between rounds cancels."""

from __future__ import annotations

import math
from pathlib import Path

from servebench.report import headline, tables
from servebench.report.data import load
from servebench.report.narrative import summary_lines
from servebench.report.ratios import capacity_ratio, endpoint_ratios, window_ratio
from servebench.results.derive import capacity, window_stats
from tests.test_report import MATRIX, outputs, step, summary

ROUNDS = [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]


def drifting(base: float) -> dict:
    """Windows of five rounds whose speed moves by up to 60% from round to round."""
    speed = [1.0, 1.6, 0.9, 1.3, 1.1]
    return window_stats([base * speed[r] for r in ROUNDS], ROUNDS)


def test_a_ratio_within_rounds_cancels_the_drift_between_them() -> None:
    mine, ref = drifting(0.1), drifting(0.4)
    assert mine["unstable"] and ref["unstable"]  # the absolute figures move by far more than 10%
    median, low, high = window_ratio(mine, ref)
    assert math.isclose(median, 0.25) and math.isclose(low, 0.25) and math.isclose(high, 0.25)


def test_only_rounds_both_were_measured_in_are_paired() -> None:
    mine = window_stats([1.0, 1.0, 3.0], [0, 0, 7])
    ref = window_stats([2.0, 2.0, 1.0], [0, 0, 5])
    assert window_ratio(mine, ref)[:1] == (0.5,) and all(map(math.isnan, window_ratio(mine, ref)[1:]))


def test_capacities_pair_estimate_by_estimate() -> None:
    assert capacity_ratio({"estimates": [1000, 1400, 2000]}, {"estimates": [500, 700, 800]}) == (2.0, 2.0, 2.5)
    median, low, high = capacity_ratio({"rate": 1000}, {"rate": 4000})
    assert median == 0.25 and math.isnan(low) and math.isnan(high)
    assert all(map(math.isnan, capacity_ratio({"rate": 0}, {"rate": 4000})))


def test_without_a_reference_there_is_no_ratio() -> None:
    assert all(map(math.isnan, endpoint_ratios(summary("a", "m1", 0.5, 1000), None).values()))


def test_the_summary_gives_each_stack_against_the_reference_by_name(tmp_path: Path) -> None:
    ladder = [step(r, 1.0) for r in (250, 500, 1000, 2000, 4000, 8000)] + [step(16000, 50.0)]
    fast = summary("b", "m1", 0.1, 8000, ladder=ladder, capacity=capacity(ladder, 10.0))
    docs = [summary("a", "m1", 0.5, 1000), fast]
    data = load(outputs(tmp_path, docs), MATRIX, reference="a")
    frame = headline.frame(data).set_index("framework")
    assert math.isclose(frame.loc["a", "p50_ratio"], 1.0) and math.isclose(frame.loc["b", "p50_ratio"], 0.2)
    assert math.isclose(frame.loc["b", "capacity_ratio"], 8.0)
    table = tables.summary_table(data)
    assert "p50 ÷ Stack a (×)" in table.columns and "Capacity ÷ Stack a (×)" in table.columns
    assert any(line.startswith("Against Stack a on the same model") for line in summary_lines(data))
    # no reference: no ratio columns
    assert "p50 ÷ Stack a (×)" not in tables.summary_table(load(outputs(tmp_path, docs), MATRIX))
