"""The report from synthetic results: the headline figures, ranks with ties, honest digits, the
ladder's capacity, the summary's few sentences, charts that take only correct endpoints, the
comparison of two runs, a report that still renders when every combination failed, and the
registry of metrics every table, chart and sentence takes its headings and directions from."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

matplotlib.use("Agg")

from servebench.bench.endpoint import native_windows
from servebench.bench.ladder import held, ladder_rates, run_ladder
from servebench.bench.oha import Run
from servebench.config import Matrix
from servebench.registry import ServerSpec
from servebench.report import figures, headline, tables
from servebench.report.data import load
from servebench.report.metrics import HEADLINE, PYTHON_CLIENT, Metric, best_first
from servebench.report.narrative import MAX_SENTENCES, stalled_note, summary_lines
from servebench.results import files as results
from servebench.results.derive import capacity, median_interval, native_summary, window_stats

MODELS = {"m1": "Model one", "m2": "Model two"}


def spec(sid: str, group: str) -> ServerSpec:
    return ServerSpec(
        id=sid,
        dir=Path("."),
        label=f"Stack {sid}",
        group=group,
        language="x",
        framework="x",
        http_server="x",
        runtime="x",
        approach="realistic",
        formats=("onnx",),
        command=("true",),
    )


MATRIX = Matrix({"b": spec("b", "rust"), "a": spec("a", "web framework")}, MODELS)


def window(median: float, spread: float = 0.02) -> dict[str, Any]:
    return window_stats([median * (1 - spread / 2), median, median * (1 + spread / 2)])


def step(rate: float, p99: float, achieved: float | None = None, errors: int = 0) -> dict[str, Any]:
    s = {
        "offered_rate": rate,
        "sent_rate": rate,
        "achieved_rate": rate if achieved is None else achieved,
        "errors": errors,
        "ok": int(rate),
        "requests": int(rate),
        "p50": p99 / 3,
        "p90": p99 / 2,
        "p99": p99,
        "p99_9": p99 * 2,
        "cpu_ms_per_request": 1000 / (rate * 1.1),
        "step": "ladder",
    }
    s["held"] = held(s, 10.0)
    return s


def summary(framework: str, model: str, p50: float, cap: float, status: str = "ok", **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {f: {} for f in results.OBSERVATION_FIELDS}
    steps = [step(r, 1.0) for r in (250, 500, 1000) if r <= cap] + [step(cap * 2, 50.0)]
    ladder = steps if status == "ok" else []
    doc.update(
        framework=framework,
        model=model,
        status=status,
        reason="",
        ladder=ladder,
        capacity=capacity(ladder, 10.0) if ladder else {},
        load=[{"connections": 1, "achieved_rate": cap * 1.5, "requests": 10, "errors": 0, "p50": p50, "p99": p50 * 2}]
        if status == "ok"
        else [],
        native={
            "predict": {"p50": window(p50), "p99": window(p50 * 3), "p90": window(p50 * 2)},
            "health": {"p50": window(0.08), "p99": window(0.2)},
        }
        if status == "ok"
        else {},
        sequential={"p50": p50 + 0.3, "avg": p50 + 0.35, "p99": p50 + 1} if status == "ok" else {},
        health={"p50": 0.4},
        server_time={"p50": p50 / 4},
        cost={"measured": True, "peak_rss_mb": 30.0, "cpu_ms_per_request_at_capacity": 0.02, "startup_s": 1.5},
        settings={},
        environment={},
    )
    doc.update(extra)
    return doc


def outputs(tmp_path: Path, docs: list[dict[str, Any]], runs: list[dict[str, Any]] | None = None) -> Path:
    out = tmp_path
    res = out / "results"
    res.mkdir(parents=True, exist_ok=True)
    for d in docs:
        results.write(res, f"{d['framework']}__{d['model']}", d)
    runs = runs or [
        {"framework": d["framework"], "model": d["model"], "status": d["status"], "reason": ""} for d in docs
    ]
    (res / "runs.json").write_text(json.dumps(runs))
    return out


def test_window_stats_median_range_and_unstable_flag() -> None:
    # below six windows no pair of order statistics reaches 95%: the interval is the range
    w = window_stats([1.0, 1.02, 0.99, 1.01, 1.0])
    assert w["median"] == 1.0 and w["low"] == 0.99 and w["high"] == 1.02 and not w["unstable"]
    assert w["coverage"] == 1 - 2 * 0.5**5
    assert window_stats([1.0, 1.2, 1.0])["unstable"]
    assert window_stats([])["windows"] == 0


def test_median_interval_of_twenty_windows_is_the_6th_and_15th() -> None:
    assert median_interval(20) == (6, pytest.approx(0.9586, abs=1e-4))
    assert median_interval(10)[0] == 2 and median_interval(6)[0] == 1
    # two stalled windows and two lucky ones do not move the interval; 20 windows in any order
    values = [1.0 + i / 100 for i in range(16)] + [5.0, 9.0, 0.2, 0.1]
    w = window_stats(values[::-1])
    assert (w["low"], w["high"]) == (1.03, 1.12) and w["windows"] == 20
    assert w["spread"] > 8 and not w["unstable"]  # the range is wide, the median is known to ±5%
    assert window_stats([1.0] * 10 + [1.3] * 10)["unstable"]


def test_windows_in_rounds_take_their_interval_from_the_rounds_medians() -> None:
    # five rounds of four windows: each round agrees within itself, the rounds differ
    centres = [1.0, 0.8, 1.2, 0.9, 1.1]
    values = [c * (1 + d) for c in centres for d in (-0.01, 0.0, 0.005, 0.01)]
    rounds = [r for r in range(5) for _ in range(4)]
    w = window_stats(values, rounds)
    assert (w["low"], w["high"]) == (pytest.approx(0.8, rel=0.01), pytest.approx(1.2, rel=0.01))  # k = 1 of 5
    assert w["rounds"] == 5 and w["windows"] == 20 and w["unstable"]
    assert w["coverage"] == 1 - 2 * 0.5**5
    # taken as 20 independent windows, the interval would claim far more than the rounds support
    alone = window_stats(values)
    assert alone["high"] - alone["low"] < 0.6 * (w["high"] - w["low"])
    assert w["median"] == alone["median"]


def test_median_interval_covers_the_median_as_claimed() -> None:
    # a skewed latency-like distribution: the 95.9% claim holds without assuming its shape
    rng = np.random.default_rng(1)
    true_median = 1.0  # of lognormal(0, σ)
    hits = [
        (w := window_stats(list(rng.lognormal(0.0, 0.5, 20))))["low"] <= true_median <= w["high"] for _ in range(4000)
    ]
    assert abs(np.mean(hits) - 0.9586) < 0.01


def test_native_single_interleaves_predict_and_health() -> None:
    calls: list[str] = []

    def fake(run: Run, cpus: str | None) -> dict[str, Any]:
        calls.append(run.url)
        v = 0.1 if "health" in run.url else 0.2
        return {"p50": v, "p90": v, "p99": v, "p99_9": v, "mean_ms": v, "requests": 10, "errors": 0, "first_error": ""}

    got = native_summary(native_windows(Run("http://x/predict/m"), Run("http://x/health"), 3, None, runner=fake))
    assert calls == ["http://x/predict/m", "http://x/health"] * 3
    assert got["predict"]["p50"]["median"] == 0.2 and got["health"]["p50"]["windows"] == 3


def test_a_window_whose_floor_shows_a_stall_is_measured_again() -> None:
    floors = iter([0.1, 0.11, 0.5, 0.1, 0.09])

    def fake(run: Run, cpus: str | None) -> dict[str, Any]:
        v = next(floors) if "health" in run.url else 0.2
        return {"p50": v, "p90": v, "p99": v, "p99_9": v, "mean_ms": v, "requests": 10, "errors": 1, "first_error": "x"}

    parts = native_windows(Run("http://x/predict/m"), Run("http://x/health"), 4, None, runner=fake)
    assert [w["stalled"] for w in parts["health"]] == [False, False, True, False, False]
    got = native_summary(parts)
    assert got["health"]["p50"]["windows"] == 4 and sorted(got["health"]["p50"]["values"]) == [0.09, 0.1, 0.1, 0.11]
    assert got["predict"]["stalled"] == 1 and got["predict"]["errors"] == 5  # failures are kept

    def stuck(run: Run, cpus: str | None) -> dict[str, Any]:
        v = 1.0 if "health" in run.url else 0.2
        return {"p50": v, "p90": v, "p99": v, "p99_9": v, "mean_ms": v, "requests": 10, "errors": 0, "first_error": ""}

    # a machine that stays slow: at most as many repeats as windows, then the windows are counted
    parts = native_windows(Run("http://x/predict/m"), Run("http://x/health"), 2, None, stuck, floors=[0.1])
    assert [w["stalled"] for w in parts["predict"]] == [True, True, False, False]


def test_ladder_is_shared_geometric_and_stops_at_the_first_rate_not_held() -> None:
    assert ladder_rates(250, 2000, 1) == [250, 500, 1000, 2000]
    assert ladder_rates(250, 1000, 2) == [250, 354, 500, 707, 1000]
    seen: list[float] = []

    def fake(run: Run, cpus: str | None) -> dict[str, Any]:
        seen.append(run.rate)
        ok = run.rate <= 800
        return step(run.rate, 2.0 if ok else 40.0) | {"ok": 100}

    steps = run_ladder("http://x/p", None, [250, 500, 1000, 2000], 1, 10.0, 8, None, refine=2, runner=fake)
    assert seen[:3] == [250, 500, 1000] and 2000 not in seen  # stopped early
    # a rate missed on p99 alone is measured again before the ladder stops; then bisected
    assert [s["step"] for s in steps[2:]] == ["ladder", "repeat", "refine", "refine", "repeat"]
    cap = capacity(steps, 10.0)
    assert 500 < cap["rate"] <= 800 and not cap["reached_top"]
    assert cap["cores_per_10k"] == pytest.approx(10_000 / cap["rate"])


def test_a_step_is_held_only_without_errors_at_the_rate_within_the_target() -> None:
    assert held(step(1000, 5.0), 10.0)
    assert not held(step(1000, 11.0), 10.0)
    assert not held(step(1000, 5.0, achieved=970), 10.0)
    assert not held(step(1000, 5.0, errors=1), 10.0)


def test_the_report_says_how_many_windows_met_a_stall(tmp_path: Path) -> None:
    stalled = summary("b", "m1", 0.1, 8000)
    stalled["native"]["predict"]["stalled"] = 2
    data = load(outputs(tmp_path, [summary("a", "m1", 0.5, 1000), stalled]), MATRIX)
    assert stalled_note(data).startswith("2 window(s) met a stall of the machine")
    data = load(outputs(tmp_path / "calm", [summary("a", "m1", 0.5, 1000)]), MATRIX)
    assert stalled_note(data).startswith("None of the")


def test_the_generator_table_reads_by_its_multiple_of_the_fastest_capacity(tmp_path: Path) -> None:
    out = outputs(tmp_path, [summary("a", "m1", 0.5, 1000)])
    row = {"offered_rate": 1200.0, "sent_rate": 1199.0, "achieved_rate": 1199.0, "errors": 0, "held": True}
    doc = {"framework": "a", "peak": 1000.0, "basis": "capacity", "rows": [{"multiple": 1.2, **row}]}
    (out / "results" / "generator.json").write_text(json.dumps(doc))
    table = tables.generator_table(load(out, MATRIX))
    assert table.index.name == "× fastest capacity" and list(table.index) == ["1.2"]
    assert table.columns[0] == "Offered (req/s)" and table.iloc[0]["Held within 2%"] == "yes"


def test_correctness_reads_as_one_line_when_every_endpoint_passed(tmp_path: Path) -> None:
    passed = {"rows": 10, "max_abs_diff": 3e-7, "label_mismatches": 0, "ok": True}
    docs = [summary("a", "m1", 0.5, 1000, parity=passed), summary("b", "m1", 0.1, 8000, parity=passed)]
    assert tables.parity_verdict(load(outputs(tmp_path, docs), MATRIX)).startswith("All 2 endpoints passed")
    docs[1].update(status="incorrect", parity={**passed, "ok": False, "max_abs_diff": 0.4})
    verdict = tables.parity_verdict(load(outputs(tmp_path / "bad", docs), MATRIX))
    assert verdict.startswith("**1 of 2 endpoints did not pass**")


def test_digits_follow_the_spread() -> None:
    assert headline.fmt(0.12345, 0.120, 0.128) == "0.123 (0.120–0.128)"
    assert headline.fmt(0.12345, 0.10, 0.16) == "0.12 (0.10–0.16)"
    assert headline.fmt(float("nan")) == "—"
    # no more than three significant digits, and no range that prints as one number
    assert headline.fmt(1.18921, 1.18918, 1.18923) == "1.19"
    assert headline.fmt(0.29735, 0.29731, 0.29738) == "0.297"
    assert headline.fmt(0.0167, 0.0166, 0.0167) == "0.0167 (0.0166–0.0167)"


def test_ranks_share_a_place_when_intervals_overlap() -> None:
    assert headline.ranks([1.0, 1.05, 2.0], [0.9, 1.0, 1.9], [1.1, 1.1, 2.1]) == [1, 1, 3]
    assert headline.ranks([10.0, 30.0, 20.0], [math.nan] * 3, [math.nan] * 3, better="higher") == [3, 1, 2]


def test_summary_table_groups_stacks_and_flags_the_transport_limit(tmp_path: Path) -> None:
    out = outputs(tmp_path, [summary("a", "m1", 0.5, 1000), summary("b", "m1", 0.1, 8000)])
    data = load(out, MATRIX)
    table = tables.summary_table(data)
    assert list(table.index.get_level_values("Group")) == ["web framework", "rust"]  # grouped, in GROUPS order
    assert table.loc[("Model one", "rust", "Stack b"), "Note"].startswith("at the transport's limit")
    assert table.loc[("Model one", "rust", "Stack b"), "Rank (capacity)"] == 1
    lines = summary_lines(data)
    assert 1 <= len(lines) <= MAX_SENTENCES and "Stack b" in lines[0]


def test_capacities_print_the_range_of_their_estimates_and_tie_when_ranges_overlap(tmp_path: Path) -> None:
    a, b, c = summary("a", "m1", 0.5, 1000), summary("b", "m1", 0.4, 1000), summary("c", "m1", 0.3, 1000)
    a["capacity"].update(rate=1090.0, low=1000.0, high=1189.0, searches=[{"rate": 1090.0, "steps": [step(1090, 2.0)]}])
    b["capacity"].update(rate=1000.0, low=917.0, high=1090.0)  # overlaps a's range: a tie
    c["capacity"].update(rate=841.0, low=771.0, high=891.0)  # below b's range
    matrix = Matrix({**MATRIX.frameworks, "c": spec("c", "web framework")}, MODELS)
    data = load(outputs(tmp_path, [a, b, c]), matrix)
    rows = tables.summary_table(data).xs("Model one", level="Model").droplevel("Group")
    assert rows["Capacity (req/s)"].to_dict() == {
        "Stack a": "1,090 (1,000–1,189)",
        "Stack b": "1,000 (917–1,090)",
        "Stack c": "841 (771–891)",
    }
    assert rows["Rank (capacity)"].to_dict() == {"Stack a": 1, "Stack b": 1, "Stack c": 3}
    assert _points(figures.summary_scatter(data)) == 3
    steps = tables.ladder_table(data).xs("Stack a", level="Framework")
    assert steps["Step"].tolist()[-1] == "capacity round 1" and steps["Offered (req/s)"].tolist()[-1] == 1090


def test_charts_never_plot_an_incorrect_endpoint(tmp_path: Path) -> None:
    good = summary("a", "m1", 0.5, 1000)
    wrong = summary("b", "m1", 0.1, 8000, status="incorrect")
    out = outputs(tmp_path, [good, wrong])
    # a stale Python-client file of the incorrect endpoint, as an earlier run could have left
    frame = pd.DataFrame(
        {
            "phase": ["predict"],
            "i": [0],
            "measured": [True],
            "status": [200],
            "ok": [True],
            "latency_ms": [0.1],
            "server_ms": [0.02],
            "error": [""],
        }
    )
    for key in ("a__m1", "b__m1"):
        frame.to_parquet(out / "results" / f"{key}.sequential.parquet")
    data = load(out, MATRIX)
    for make in (figures.summary_scatter, figures.ladder, figures.native_latency, figures.latency_ecdf):
        fig = make(data)
        legends = [ax.get_legend() for ax in (fig.axes if fig else []) if ax.get_legend()]
        legends += list(fig.legends) if fig else []
        labels = [t.get_text() for legend in legends for t in legend.get_texts()]
        labels += [t.get_text() for ax in (fig.axes if fig else []) for t in ax.get_yticklabels()]
        assert any("Stack a" in label for label in labels), make.__name__
        assert not any("Stack b" in label for label in labels), make.__name__
    assert set(figures._python_predict(data)["framework"]) <= {"a"}


def test_everything_failed_still_gives_a_report(tmp_path: Path) -> None:
    runs = [{"framework": "a", "model": "m1", "status": "failed", "reason": "did not start"}]
    data = load(outputs(tmp_path, [], runs), MATRIX)
    for make in (
        figures.summary_scatter,
        figures.ladder,
        figures.native_latency,
        figures.closed_loop,
        figures.latency_ecdf,
        figures.percentiles_by_framework,
        figures.decomposition,
    ):
        assert make(data) is None
    assert tables.summary_table(data).empty and tables.parity_table(data).empty
    (line,) = summary_lines(data)
    assert "a × m1: failed" in line


def test_compare_gives_ratios_endpoint_by_endpoint(tmp_path: Path) -> None:
    now = load(outputs(tmp_path / "now", [summary("a", "m1", 0.5, 1000), summary("b", "m1", 0.1, 8000)]), MATRIX)
    before = load(outputs(tmp_path / "before", [summary("a", "m1", 0.25, 500)]), MATRIX)
    table = tables.compare_table(now, before)
    assert len(table) == 1  # only the endpoint both runs measured
    assert table["p50: ratio"].iloc[0] == pytest.approx(2.0)
    assert table["Capacity: ratio"].iloc[0] == pytest.approx(2.0)


def test_a_target_elsewhere_shows_cost_as_not_measured(tmp_path: Path) -> None:
    remote = summary("c", "m1", 0.2, 4000, cost={"measured": False, "startup_s": None})
    data = load(outputs(tmp_path, [remote]), MATRIX)
    cost = tables.cost_table(data)
    assert cost["Note"].iloc[0].startswith("not measured") and cost["Peak MiB"].iloc[0] == "—"
    assert "cost not measured" in tables.summary_table(data)["Note"].iloc[0]


def test_a_server_below_the_first_rate_is_halved_down_to_a_capacity() -> None:
    def fake(run: Run, cpus: str | None) -> dict[str, Any]:
        return step(run.rate, 2.0 if run.rate <= 130 else 40.0) | {"ok": 100}

    steps = run_ladder("http://x/p", None, [500, 1000], 1, 10.0, 8, None, refine=0, runner=fake)
    assert [(s["step"], s["offered_rate"]) for s in steps] == [
        ("ladder", 500),
        ("repeat", 500),
        ("below", 250),
        ("repeat", 250),
        ("below", 125),
        # it held 125 after missing 500 on p99 alone: the ladder is climbed once more
        ("again", 500),
        ("repeat", 500),
    ]
    assert capacity(steps, 10.0)["rate"] == 125


def test_a_stall_longer_than_a_repeat_at_the_first_rate_does_not_become_the_capacity() -> None:
    """The machine stalls through the first rate, its repeat and the first halving; the server
    holds thousands of requests a second."""
    seen: list[float] = []

    def fake(run: Run, cpus: str | None) -> dict[str, Any]:
        seen.append(run.rate)
        if len(seen) <= 3:
            return step(run.rate, 25.0) | {"ok": 100}  # stalled
        if run.rate >= 4000:
            return step(run.rate, 900.0, achieved=0.8 * run.rate) | {"ok": 100}  # saturated
        return step(run.rate, 1.0) | {"ok": 100}

    steps = run_ladder("http://x/p", None, [250, 500, 1000, 2000, 4000], 1, 10.0, 8, None, refine=1, runner=fake)
    assert [(s["step"], s["offered_rate"]) for s in steps] == [
        ("ladder", 250),
        ("repeat", 250),
        ("below", 125),
        ("repeat", 125),
        ("again", 250),
        ("again", 500),
        ("again", 1000),
        ("again", 2000),
        ("again", 4000),
        ("refine", 2828),  # between the highest rate held and the lowest above it not held
    ]
    assert capacity(steps, 10.0)["rate"] == 2828


def test_a_server_saturated_at_the_first_rate_is_not_climbed_again() -> None:
    def fake(run: Run, cpus: str | None) -> dict[str, Any]:
        ok = run.rate <= 130
        return step(run.rate, 2.0 if ok else 900.0, achieved=run.rate if ok else 0.5 * run.rate) | {"ok": 100}

    steps = run_ladder("http://x/p", None, [500, 1000], 1, 10.0, 8, None, refine=0, runner=fake)
    assert [(s["step"], s["offered_rate"]) for s in steps] == [("ladder", 500), ("below", 250), ("below", 125)]


def test_one_stall_does_not_end_the_ladder_but_saturation_does() -> None:
    """A window spoiled once by a stall of the machine is measured again; a rate the server cannot
    answer (fewer answers than offered) is not."""
    seen: list[float] = []

    def fake(run: Run, cpus: str | None) -> dict[str, Any]:
        seen.append(run.rate)
        if run.rate == 500 and seen.count(500) == 1:
            return step(run.rate, 30.0) | {"ok": 100}  # one stall
        if run.rate >= 2000:
            return step(run.rate, 900.0, achieved=0.8 * run.rate) | {"ok": 100}  # saturated
        return step(run.rate, 2.0) | {"ok": 100}

    steps = run_ladder("http://x/p", None, [250, 500, 1000, 2000, 4000], 1, 10.0, 8, None, refine=0, runner=fake)
    assert seen == [250, 500, 500, 1000, 2000]
    assert [s["step"] for s in steps] == ["ladder", "ladder", "repeat", "ladder", "ladder"]
    assert capacity(steps, 10.0)["rate"] == 1000


def test_the_summary_chart_takes_endpoints_that_held_no_rate(tmp_path: Path) -> None:
    slow = summary("a", "m1", 5.0, 1000)
    slow["ladder"] = [step(250, 400.0)]
    slow["capacity"] = capacity(slow["ladder"], 10.0)
    data = load(outputs(tmp_path, [slow]), MATRIX)
    assert data.ok[0]["capacity"]["rate"] == 0
    assert _points(figures.summary_scatter(data)) == 1
    assert tables.summary_table(data)["Capacity (req/s)"].iloc[0] == "below the ladder"


def test_a_stack_on_another_server_layer_is_set_against_its_baseline(tmp_path: Path) -> None:
    layered = ServerSpec(**{**spec("c", "web framework").__dict__, "baseline": "a"})
    matrix = Matrix({"a": spec("a", "web framework"), "c": layered}, MODELS)
    docs = [summary("a", "m1", 0.5, 1000), summary("c", "m1", 1.0, 500), summary("c", "m2", 1.0, 500)]
    table = tables.layer_table(load(outputs(tmp_path, docs), matrix))
    assert list(table.index) == [("Stack c", "Stack a", "Model one")]  # m2 has no baseline to compare with
    row = table.iloc[0]
    assert row["p50 ×"] == pytest.approx(2.0, rel=0.01)
    assert row["Capacity ×"] < 1 and row["p50 Δ (ms)"] == pytest.approx(0.5, rel=0.01)


def test_recorded_deviations_are_listed_with_their_reasons(tmp_path: Path) -> None:
    deviating = ServerSpec(
        **{
            **spec("a", "serving framework").__dict__,
            "deviations": {"age-is-text": {"status": [400], "reason": "the framework answers 400"}},
            "transport_limits": {"slow_body": "no body timeout"},
        }
    )
    matrix = Matrix({"a": deviating, "b": spec("b", "rust")}, MODELS)
    docs = [summary("a", "m1", 0.5, 1000), summary("b", "m1", 0.1, 8000)]
    table = tables.deviations_table(load(outputs(tmp_path, docs), matrix))
    assert table.loc[("Stack a", "contract status", "age-is-text"), "Answered"] == "400"
    assert table.loc[("Stack a", "transport limit", "slow_body"), "Why"] == "no body timeout"
    assert "Stack b" not in table.index.get_level_values("Stack")


def test_every_headline_figure_has_a_registry_entry_and_every_entry_a_figure(tmp_path: Path) -> None:
    frame = headline.frame(load(outputs(tmp_path, [summary("a", "m1", 0.5, 1000)]), MATRIX))
    bounds = {f"{key}_{end}" for key in HEADLINE for end in ("low", "high")}
    flags = {c for c in frame.columns if frame[c].dtype == bool}
    figures_ = set(frame.columns) - {"framework", "model", "rows_per_request"} - bounds - flags
    assert figures_ == set(HEADLINE)
    # nor an interval of a figure the registry lacks
    assert not {c for c in frame.columns if c.endswith(("_low", "_high"))} - bounds


def test_the_tables_take_their_headings_from_the_registry(tmp_path: Path) -> None:
    layered = ServerSpec(**{**spec("c", "web framework").__dict__, "baseline": "a"})
    matrix = Matrix({"a": spec("a", "web framework"), "c": layered}, MODELS)
    docs = [summary("a", "m1", 0.5, 1000), summary("c", "m1", 1.0, 500)]
    data = load(outputs(tmp_path / "now", docs), matrix)
    other = load(outputs(tmp_path / "before", docs), matrix)
    summary_ = tables.summary_table(data)
    expected = [HEADLINE[c.key].rank_label if isinstance(c, tables.Rank) else HEADLINE[c].label for c in tables.SUMMARY]
    assert list(summary_.columns) == [*expected, "Note"]
    assert list(tables.layer_table(data).columns) == [
        *(HEADLINE[k].ratio_label for k in tables.LAYER),
        HEADLINE["p50"].delta_label,
        tables.COMMON_RATE,
        "p50 at that rate ×",
        "p99 at that rate ×",
    ]
    assert list(tables.compare_table(data, other).columns) == [
        heading
        for m in (HEADLINE[k] for k in tables.COMPARED)
        for heading in (f"{m.label}: this", f"{m.label}: other", f"{m.name}: ratio")
    ]
    cost = tables.cost_table(data)
    assert list(cost.columns) == [*(HEADLINE[k].label for k in tables.COST), "Note"]
    # a figure in both tables reads the same in both, heading and digits
    shared = [HEADLINE[k].label for k in tables.COST if k in tables.SUMMARY]
    assert shared == ["Capacity (req/s)", "CPU ms / req", "Cores / 10k req/s", "Peak MiB"]
    assert summary_.droplevel("Group")[shared].values.tolist() == cost[shared].values.tolist()
    endpoint = tables.endpoint_table(data)
    assert [PYTHON_CLIENT[k].label for k in tables.ORIGINAL + tables.ADDED] == list(endpoint.columns[:13])
    assert HEADLINE["python_floor"].label in endpoint.columns


def test_a_metrics_direction_drives_its_rank_and_where_the_best_are(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = [summary("a", "m1", 0.5, 500), summary("b", "m1", 0.1, 1000)]
    data = load(outputs(tmp_path, docs), MATRIX)

    def capacity_ranks() -> dict[str, int]:
        table = tables.summary_table(data).droplevel(["Group", "Model"])
        return table[HEADLINE["capacity"].rank_label].to_dict()

    assert capacity_ranks() == {"Stack a": 2, "Stack b": 1}
    assert figures.best_corner() == "top left"
    assert "Most load held at p99 ≤ 10 ms on one server core: Stack b" in summary_lines(data)[1]
    monkeypatch.setitem(HEADLINE, "capacity", replace(HEADLINE["capacity"], better="lower"))
    assert capacity_ranks() == {"Stack a": 1, "Stack b": 2}
    assert figures.best_corner() == "bottom left"
    assert "on one server core: Stack a" in summary_lines(data)[1]
    monkeypatch.setitem(HEADLINE, "p50", replace(HEADLINE["p50"], better="higher"))
    assert summary_lines(data)[0].startswith("Fastest single request: Stack a")
    assert figures.best_corner() == "bottom right"


def test_a_metric_states_its_direction_or_cannot_be_ranked() -> None:
    with pytest.raises(ValueError, match="better"):
        Metric("x", "X (ms)", "ms", "smaller", None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no better direction"):
        PYTHON_CLIENT["n"].direction()
    assert all(m.better in ("lower", "higher") for m in HEADLINE.values())
    assert best_first([2.0, math.nan, 1.0], "lower") == [2, 0, 1]
    assert best_first([2.0, math.nan, 1.0], "higher") == [0, 2, 1]
    assert HEADLINE["capacity"].name == "Capacity" and HEADLINE["cpu_ms"].name == "CPU ms / req"


def _points(fig: Figure | None) -> int:
    """How many endpoints a summary chart places: one error bar each."""
    assert fig is not None, "no chart"
    return len(fig.axes[0].containers)


def test_only_rows_whose_status_is_not_correct_are_painted_red() -> None:
    summary = pd.DataFrame({"p50 (ms)": [0.5, 0.7]}, index=["a", "b"])
    assert "#b00020" not in tables.highlight_incorrect(summary).to_html()
    parity = pd.DataFrame({"Status": ["correct", "INCORRECT"]}, index=["a", "b"])
    html = tables.highlight_incorrect(parity).to_html()
    assert html.count("color: #b00020") == 1


def test_the_report_says_how_many_capacity_probes_met_a_stall(tmp_path: Path) -> None:
    from servebench.report.narrative import stalled_probes_note

    stalled = summary("b", "m1", 0.1, 8000)
    stalled["ladder"] = [
        {**step(1000, 40.0), "held": False, "stalled": True, "step": "ladder"},
        {**step(1000, 2.0), "held": True, "step": "ladder"},
    ]
    data = load(outputs(tmp_path, [summary("a", "m1", 0.5, 1000), stalled]), MATRIX)
    assert stalled_probes_note(data).startswith("1 of ")
    assert "stalled, measured again" in set(tables.ladder_table(data)["Held"])
    calm = summary("a", "m1", 0.5, 1000)
    calm["ladder"] = [{**step(1000, 2.0), "held": True, "step": "ladder"}]
    assert stalled_probes_note(load(outputs(tmp_path / "calm", [calm]), MATRIX)).startswith("None of the 1")
