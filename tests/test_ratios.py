"""Ratios to the reference stack, pair by pair within a round, so that drift between rounds cancels."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from servebench.config import Matrix
from servebench.report import figures, headline, tables
from servebench.report.data import load
from servebench.report.metrics import HEADLINE
from servebench.report.narrative import summary_lines
from servebench.report.ratios import capacity_ratio, endpoint_ratios, window_ratio
from servebench.results.derive import capacity, window_stats
from tests.test_report import MATRIX, outputs, spec, step, summary

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


def rounds_summary(framework: str, base: float, speed: list[float]) -> dict:
    """An endpoint measured in five rounds of two windows, at the machine's speed of each round."""
    doc = summary(framework, "m1", base, 1000)
    p50 = window_stats([base * speed[r] for r in ROUNDS], ROUNDS)
    doc["native"]["predict"]["p50"] = p50
    return doc


def test_compare_divides_out_the_machine_and_marks_only_what_moved(tmp_path: Path) -> None:
    before = [1.0, 1.1, 0.95, 1.05, 1.0]
    after = [s * 1.25 for s in [1.0, 0.9, 1.1, 1.0, 1.05]]  # the whole machine 25% slower, and noisier
    old = [rounds_summary("a", 0.5, before), rounds_summary("b", 0.1, before)]
    # b: same ratio to the reference; a stack "c" whose ratio doubled
    new = [rounds_summary("a", 0.5, after), rounds_summary("b", 0.1, after)]
    matrix = Matrix({**MATRIX.frameworks, "c": spec("c", "web framework")}, MATRIX.models)
    old.append(rounds_summary("c", 0.2, before))
    new.append(rounds_summary("c", 0.4, after))
    this = load(outputs(tmp_path / "new", new), matrix, reference="a")
    other = load(outputs(tmp_path / "old", old), matrix, reference="a")
    table, factor = tables.drift_compare_table(this, other)
    assert 1.2 < factor["Model one"] < 1.35
    changed = table["p50 ÷ Stack a: changed"].droplevel("Model")
    assert changed["Stack b"] == "no" and changed["Stack c"] == "yes"
    assert math.isclose(table["p50 ÷ Stack a: moved ×"].droplevel("Model")["Stack c"], 2.0)
    # the absolute comparison sees every endpoint slower
    absolute = tables.compare_table(this, other)["p50: ratio"]
    assert (absolute > 1.15).all()


def test_unstable_only_where_the_doubt_changes_the_order_or_the_chart() -> None:
    rows = {
        # (p50, low, high, interval wider than 10%)
        "tie": (1.00, 0.99, 1.01, False),  # narrow, and holding its neighbour's p50: a true tie
        "near": (1.005, 0.995, 1.015, False),
        "doubt": (1.30, 1.02, 1.40, True),  # wide, and holds the next one's p50: order unknown
        "next": (1.35, 1.34, 1.36, False),
        "wide_alone": (3.0, 2.7, 3.3, True),  # wide, but nothing near: the figure still answers
        "off_chart": (9.0, 5.0, 12.0, True),
    }
    frame = pd.DataFrame(
        [{"p50": p, "p50_low": lo, "p50_high": hi, "unstable": u} for p, lo, hi, u in rows.values()],
        index=list(rows),
    )
    flagged = headline.unsettled(frame)
    assert set(flagged) == {"doubt", "off_chart"}, flagged
    assert "order is not known" in flagged["doubt"] and "too wide to place on the chart" in flagged["off_chart"]


def test_flags_and_ranks_compare_ratios_where_the_model_has_them() -> None:
    """Absolute intervals carry the drift between trials; the per-trial ratios do not."""
    rows = {
        # (p50, low, high, ratio, ratio low, ratio high)
        "ref": (0.50, 0.45, 0.80, 1.0, 1.0, 1.0),
        "close": (0.51, 0.46, 0.85, 1.02, 0.95, 1.12),  # wide, and holds the reference's 1: open
        "steady": (1.00, 0.90, 1.70, 2.00, 1.95, 2.05),  # absolute ×1.9 from drift, ratio narrow
        "next": (1.10, 1.00, 1.80, 2.20, 2.15, 2.25),
    }
    frame = pd.DataFrame(
        [
            {
                "p50": p,
                "p50_low": lo,
                "p50_high": hi,
                "unstable": True,
                "p50_ratio": r,
                "p50_ratio_low": rl,
                "p50_ratio_high": rh,
            }
            for p, lo, hi, r, rl, rh in rows.values()
        ],
        index=list(rows),
    )
    flagged = headline.unsettled(frame)
    assert set(flagged) == {"close"} and "p50 ratio" in flagged["close"], flagged
    assert headline.ranks_of(frame, HEADLINE["p50"]) == [1, 1, 3, 4]
    # without a ratio on every row, the absolute figures, as before
    absolute = frame.assign(p50_ratio=[1.0, math.nan, 2.0, 2.2])
    assert set(headline.unsettled(absolute)) == set(rows)  # every absolute interval spans more than ×1.5
    assert headline.ranks_of(absolute, HEADLINE["p50"]) == [1, 1, 3, 3]


def test_the_summary_chart_sets_stacks_against_the_reference(tmp_path: Path) -> None:
    docs = [summary("a", "m1", 0.5, 1000), summary("b", "m1", 0.1, 1000)]
    with_ref = figures.summary_scatter(load(outputs(tmp_path, docs), MATRIX, reference="a"))
    without = figures.summary_scatter(load(outputs(tmp_path, docs), MATRIX))
    assert with_ref is not None and without is not None
    assert "÷ the reference" in with_ref.axes[0].get_xlabel() and "Stack a" in with_ref.axes[0].get_title()
    points = sorted(line.get_xdata()[0] for line in with_ref.axes[0].lines if len(line.get_xdata()) == 1)
    assert [round(x, 6) for x in points] == [0.2, 1.0]
    assert "(ms, log)" in without.axes[0].get_xlabel()
    plt.close("all")


def test_a_variant_is_set_against_its_stack_at_a_common_offered_rate() -> None:
    def steps(*held: tuple[float, float, bool]) -> list[dict]:
        return [{"offered_rate": r, "p50": p, "p99": 2 * p, "held": h} for r, p, h in held]

    variant = steps((250, 2.0, True), (500, 3.0, True), (1000, 9.0, False))
    stack = steps((250, 1.0, True), (500, 1.0, True), (1000, 1.5, True))
    at = tables._at_common_rate(variant, stack)
    assert at[tables.COMMON_RATE] == 500 and at["p50 at that rate ×"] == 3.0 and at["p99 at that rate ×"] == 3.0
    # nothing held in common: the lowest rate both were offered
    at = tables._at_common_rate(steps((500, 8.0, False)), steps((250, 1.0, True), (500, 2.0, True)))
    assert at[tables.COMMON_RATE] == 500 and at["p50 at that rate ×"] == 4.0
    assert math.isnan(tables._at_common_rate([], stack)[tables.COMMON_RATE])
