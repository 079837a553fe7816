"""The report's tables: the original write-up's three, with percentile columns added, and the
correctness, load, cost and run-status tables."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import pandas as pd

from servebench.report import headline
from servebench.report.data import ReportData
from servebench.report.metrics import HEADLINE, PYTHON_CLIENT


class Rank(NamedTuple):
    """A column of the summary: the rank of a headline figure among the endpoints of its model."""

    key: str


# Which figures each table shows, by registry key (servebench.report.metrics), in column order.
ORIGINAL = ("avg", "min", "max", "total", "variance")
ADDED = ("p50", "p90", "p99", "p99_9", "std", "mean_ci_low", "mean_ci_high", "n")
SUMMARY: tuple[str | Rank, ...] = (
    "p50",
    "p99",
    "floor",
    "server_ms",
    Rank("p50"),
    "capacity",
    Rank("capacity"),
    "cores_per_10k",
    "cpu_ms",
    "peak_mb",
)
RATIOS = ("p50_ratio", "capacity_ratio")
COST = ("capacity", "cpu_ms", "cores_per_10k", "peak_mb", "startup_s")
LAYER = ("p50", "p99", "capacity", "cpu_ms", "peak_mb")
COMPARED = ("p50", "p99", "capacity", "cpu_ms", "peak_mb", "python_p50")


def endpoint_table(data: ReportData) -> pd.DataFrame:
    """Framework × model: the original five columns, then percentiles and the CI of the mean, and
    the same client's /health floor beside them."""
    rows = []
    for s in data.ok:
        if not s.get("sequential"):
            continue
        row = {"Framework": data.matrix.label(s["framework"]), "Model": s["model"]}
        row.update({PYTHON_CLIENT[k].label: s["sequential"].get(k) for k in ORIGINAL + ADDED})
        row["Failed"] = s["sequential"].get("failed", {}).get("count", 0)
        row[HEADLINE["python_floor"].label] = (s.get("health") or {}).get("p50")
        rows.append(row)
    return _indexed(pd.DataFrame(rows))


def framework_table(data: ReportData) -> pd.DataFrame:
    """Per framework, over all its successful sequential requests (all the models it serves)."""
    seq = data.sequential
    if seq.empty:
        return pd.DataFrame()
    good = seq[(seq["phase"] == "predict") & seq["measured"] & seq["ok"]]
    ok_keys = {(s["framework"], s["model"]) for s in data.ok}
    good = good[[(f, m) in ok_keys for f, m in zip(good["framework"], good["model"], strict=True)]]
    grouped = good.groupby("framework")["latency_ms"]
    avg = PYTHON_CLIENT["avg"].label
    table = pd.DataFrame(
        {
            avg: grouped.mean(),
            PYTHON_CLIENT["p50"].label: grouped.median(),
            PYTHON_CLIENT["p99"].label: grouped.quantile(0.99),
            "Models": good.groupby("framework")["model"].nunique(),
        }
    )
    table.index = [data.matrix.label(f) for f in table.index]
    return table.sort_values(avg, ascending=PYTHON_CLIENT["avg"].direction() == "lower")


def model_table(data: ReportData, stat: str = "avg") -> pd.DataFrame:
    """Model × framework, one statistic."""
    rows = [
        {"Model": s["model"], "Framework": data.matrix.label(s["framework"]), stat: s["sequential"].get(stat)}
        for s in data.ok
    ]
    if not rows:
        return pd.DataFrame()
    return pd.DataFrame(rows).pivot(index="Model", columns="Framework", values=stat)


def parity_table(data: ReportData) -> pd.DataFrame:
    rows = []
    for s in data.summaries:
        p = s.get("parity") or {}
        rows.append(
            {
                "Framework": data.matrix.label(s["framework"]),
                "Model": s["model"],
                "Rows checked": p.get("rows"),
                "Largest |Δp|": p.get("max_abs_diff"),
                "Batch vs single |Δp|": p.get("batch_max_abs_diff"),
                "Label mismatches": p.get("label_mismatches"),
                "Status": "correct" if s["status"] == "ok" else s["status"].upper(),
            }
        )
    return _indexed(pd.DataFrame(rows))


def parity_verdict(data: ReportData) -> str:
    """The correctness section's one line: all endpoints passed, with the largest difference any
    showed, or how many did not; the table itself is then detail."""
    checked = [s for s in data.summaries if s.get("parity")]
    if not checked:
        return ""
    failed = [s for s in checked if s["status"] != "ok"]
    if failed:
        return f"**{len(failed)} of {len(checked)} endpoints did not pass** and were not benchmarked:"
    worst = max(float(s["parity"].get("max_abs_diff") or 0.0) for s in checked)
    return (
        f"All {len(checked)} endpoints passed: every validation row, singly and as one batch, within the tolerance "
        f"of the reference model, every label the same (largest difference {worst:.2g})."
    )


def deviations_table(data: ReportData) -> pd.DataFrame:
    """What each stack's description records where its framework departs from docs/api.md: a
    contract vector answered with another status, or a transport attack it does not withstand."""
    rows = []
    for f, spec in data.matrix.frameworks.items():
        if not any(s["framework"] == f for s in data.summaries):
            continue
        for vector, deviation in spec.deviations.items():
            rows.append(
                {
                    "Stack": spec.label,
                    "Kind": "contract status",
                    "Case": vector,
                    "Answered": ", ".join(str(s) for s in deviation.get("status", [])),
                    "Why": deviation.get("reason", ""),
                }
            )
        for attack, reason in spec.transport_limits.items():
            rows.append(
                {"Stack": spec.label, "Kind": "transport limit", "Case": attack, "Answered": "—", "Why": reason}
            )
    return pd.DataFrame(rows).set_index(["Stack", "Kind", "Case"]) if rows else pd.DataFrame()


def layer_table(data: ReportData) -> pd.DataFrame:
    """Each stack that runs another stack's app on a different server layer (its description's
    `baseline`), model by model: its headline figures over the baseline's. Above 1 means more
    latency, memory or CPU, or more capacity."""
    h = headline.frame(data)
    if h.empty:
        return pd.DataFrame()
    ladders = {(s["framework"], s["model"]): s.get("ladder") or [] for s in data.ok}
    rows = []
    for f, spec in data.matrix.frameworks.items():
        if spec.baseline is None:
            continue
        mine, theirs = h[h["framework"] == f], h[h["framework"] == spec.baseline]
        for a in mine.to_dict("records"):
            match = theirs[theirs["model"] == a["model"]]
            if match.empty:
                continue
            b = match.iloc[0].to_dict()
            row: dict[str, Any] = {
                "Stack": data.label(f),
                "Against": data.label(spec.baseline),
                "Model": data.model_label(a["model"]),
            }
            for key in LAYER:
                x, y = a[key], b[key]
                ok = math.isfinite(x) and math.isfinite(y) and y > 0
                row[HEADLINE[key].ratio_label] = x / y if ok else math.nan
            row[HEADLINE["p50"].delta_label] = a["p50"] - b["p50"]
            row.update(_at_common_rate(ladders.get((f, a["model"])), ladders.get((spec.baseline, a["model"]))))
            rows.append(row)
    return pd.DataFrame(rows).set_index(["Stack", "Against", "Model"]) if rows else pd.DataFrame()


COMMON_RATE = "Common rate (req/s)"


def _at_common_rate(mine: list[dict[str, Any]] | None, theirs: list[dict[str, Any]] | None) -> dict[str, float]:
    """p50 and p99 under the same open-loop load, one's over the other's (where batching, say,
    trades latency for throughput): at the highest offered rate both held, or, when they held
    none in common, at the lowest both were offered."""
    both = {
        step["offered_rate"]: (step, other)
        for step in mine or []
        for other in theirs or []
        if step["offered_rate"] == other["offered_rate"]
    }
    out = {COMMON_RATE: math.nan, "p50 at that rate ×": math.nan, "p99 at that rate ×": math.nan}
    if not both:
        return out
    held = [rate for rate, (a, b) in both.items() if a.get("held") and b.get("held")]
    rate = max(held) if held else min(both)
    step, other = both[rate]
    out[COMMON_RATE] = rate
    for stat in ("p50", "p99"):
        if other.get(stat):
            out[f"{stat} at that rate ×"] = step[stat] / other[stat]
    return out


def closed_loop_table(data: ReportData) -> pd.DataFrame:
    rows = []
    for s in data.ok:
        for level in s.get("load") or []:
            rows.append(
                {
                    "Framework": data.label(s["framework"]),
                    "Model": s["model"],
                    "Connections": level.get("connections", level.get("concurrency")),
                    "Requests": level.get("requests"),
                    "Errors": level.get("errors"),
                    "Req/s": level.get("achieved_rate", level.get("rps")),
                    "p50 (ms)": level.get("p50", level.get("p50_ms")),
                    "p99 (ms)": level.get("p99", level.get("p99_ms")),
                }
            )
    return _indexed(pd.DataFrame(rows))


def ladder_table(data: ReportData) -> pd.DataFrame:
    """Every step of every endpoint's open-loop ladder, then those of its capacity searches."""
    rows = []
    for s in data.ok:
        searches = (s.get("capacity") or {}).get("searches") or []
        steps = [
            (step, step.get("step", "")) for step in sorted(s.get("ladder") or [], key=lambda x: x["offered_rate"])
        ]
        steps += [(step, f"capacity round {i}") for i, search in enumerate(searches, 1) for step in search["steps"]]
        for step, kind in steps:
            rows.append(
                {
                    "Framework": data.label(s["framework"]),
                    "Model": s["model"],
                    "Step": kind,
                    "Offered (req/s)": step["offered_rate"],
                    "Sent (req/s)": step.get("sent_rate"),
                    "Achieved (req/s)": step["achieved_rate"],
                    "Errors": step["errors"],
                    "p50 (ms)": step["p50"],
                    "p90 (ms)": step["p90"],
                    "p99 (ms)": step["p99"],
                    "p99.9 (ms)": step["p99_9"],
                    "CPU ms / req": step.get("cpu_ms_per_request"),
                    "Held": "stalled, measured again" if step.get("stalled") else ("yes" if step.get("held") else "no"),
                }
            )
    return _indexed(pd.DataFrame(rows))


def cost_table(data: ReportData) -> pd.DataFrame:
    rows = []
    for f in headline.frame(data).to_dict("records"):
        note = "" if f["cost_measured"] else "not measured (server running elsewhere)"
        row: dict[str, Any] = {"Framework": data.label(f["framework"]), "Model": f["model"]}
        row.update({HEADLINE[key].label: headline.cell(key, f) for key in COST})
        row["Note"] = note
        rows.append(row)
    return _indexed(pd.DataFrame(rows))


def summary_columns(h: pd.DataFrame) -> tuple[str | Rank, ...]:
    """SUMMARY, with the model's inference alone where it was measured, and the capacity in rows/s
    where a request carried more than one row."""
    columns = list(SUMMARY)
    if "inference_ms" in h and h["inference_ms"].notna().any():
        at = columns.index("server_ms") + 1
        columns[at:at] = ["inference_ms", "serving_share"]
    if "rows_per_request" in h and (h["rows_per_request"] > 1).any():
        at = columns.index("capacity") + 1
        columns.insert(at, "capacity_rows")
    for key, after in (("p50_ratio", "p50"), ("capacity_ratio", "capacity")):
        if key in h and h[key].notna().any():
            columns.insert(columns.index(after) + 1, key)
    return tuple(columns)


def summary_table(data: ReportData) -> pd.DataFrame:
    """The one table of the summary: per endpoint, grouped by model and then by kind of stack."""
    h = headline.frame(data)
    if h.empty:
        return pd.DataFrame()
    models = list(data.matrix.models)
    h = h.assign(_order=[models.index(m) if m in models else len(models) for m in h["model"]])
    h = h.sort_values("_order", kind="stable").drop(columns="_order").reset_index(drop=True)
    columns = summary_columns(h)
    ranked = [HEADLINE[c.key] for c in SUMMARY if isinstance(c, Rank)]
    for m in ranked:
        h[m.rank_label] = 0
    h["_unsettled"] = ""
    for _, idx in h.groupby("model").groups.items():
        part = h.loc[idx]
        for m in ranked:
            h.loc[idx, m.rank_label] = headline.ranks_of(part, m)
        for i, why in headline.unsettled(part).items():
            h.at[i, "_unsettled"] = why
    rows = []
    for f in h.to_dict("records"):
        notes = []
        if f["at_limit"]:
            notes.append("at the transport's limit")
        if f["_unsettled"]:
            notes.append(f["_unsettled"])
        if not f["cost_measured"]:
            notes.append("cost not measured")
        row: dict[str, Any] = {
            "Model": data.model_label(f["model"]),
            "Group": data.group(f["framework"]),
            "Stack": data.label(f["framework"]),
        }
        for column in columns:
            if isinstance(column, Rank):
                label = HEADLINE[column.key].rank_label
                row[label] = int(f[label])
            else:
                row[HEADLINE[column].label] = headline.cell(column, f)
        row["Note"] = "; ".join(notes)
        rows.append(row)
    table = pd.DataFrame(rows).set_index(["Model", "Group", "Stack"])
    if data.reference:
        named = data.label(data.reference)
        table = table.rename(columns={HEADLINE[k].label: HEADLINE[k].label.replace("reference", named) for k in RATIOS})
    return table


def models_table(data: ReportData) -> pd.DataFrame:
    """The models measured: what each is (a pack's inputs → outputs and file size; how a built-in
    one was trained) and its runtime alone, in-process, on one row and per row of a batch."""
    rows = []
    measured = list(dict.fromkeys(s["model"] for s in data.summaries))
    for model in [m for m in data.matrix.models if m in measured]:
        pack = data.packs.get(model, {})
        training = pack.get("training") or {}
        alone = data.inference.get(model, {})
        trained = ""
        if training:
            score = ", ".join(f"{k} {training[k]:.3f}" for k in ("accuracy", "rmse") if k in training)
            trained = f"{training.get('layers', '')} on scikit-learn's {training.get('dataset', '')}; {score}"
        rows.append(
            {
                "Model": data.model_label(model),
                "Served as": "model pack, Open Inference Protocol" if pack else "record API (/predict)",
                "Inputs → outputs; file": pack.get("shape", ""),
                "Trained": trained,
                "Runtime": alone.get("runtime", ""),
                HEADLINE["inference_ms"].label: alone.get("single_ms"),
                "Inference per row, batch of 32 (ms)": alone.get("batch_ms_per_row"),
            }
        )
    return pd.DataFrame(rows).set_index("Model") if rows else pd.DataFrame()


def generator_table(data: ReportData) -> pd.DataFrame:
    """Each paced rate, by its multiple of the fastest endpoint's capacity (the index, so that no
    row number shows), with what was sent and answered and the latencies."""
    g = data.generator or {}
    basis = "closed-loop peak" if g.get("basis") == "closed-loop peak" else "capacity"
    rows = [
        {
            f"× fastest {basis}": f"{r.get('multiple'):g}" if r.get("multiple") is not None else "—",
            "Offered (req/s)": r["offered_rate"],
            "Sent (req/s)": r["sent_rate"],
            "Answered (req/s)": r["achieved_rate"],
            "Errors": r.get("errors"),
            "p50 (ms)": r.get("p50"),
            "p90 (ms)": r.get("p90"),
            "p99 (ms)": r.get("p99"),
            "Held within 2%": "yes" if r.get("held") else "NO",
        }
        for r in g.get("rows", [])
    ]
    return pd.DataFrame(rows).set_index(f"× fastest {basis}") if rows else pd.DataFrame()


def compare_table(data: ReportData, other: ReportData) -> pd.DataFrame:
    """Endpoint by endpoint, each headline figure of this run, the other's, and their ratio."""
    mine = headline.frame(data)
    theirs = headline.frame(other)
    if mine.empty or theirs.empty:
        return pd.DataFrame()
    merged = mine.merge(theirs, on=["framework", "model"], suffixes=("", "_other"))
    rows = []
    for f in merged.to_dict("records"):
        row: dict[str, Any] = {"Framework": data.label(f["framework"]), "Model": f["model"]}
        for key in COMPARED:
            m = HEADLINE[key]
            a, b = f[key], f[f"{key}_other"]
            row[f"{m.label}: this"] = a
            row[f"{m.label}: other"] = b
            # a ratio has no unit: headed by the name alone, as the layer table's are
            row[f"{m.name}: ratio"] = a / b if b and math.isfinite(a) and math.isfinite(b) else math.nan
        rows.append(row)
    return _indexed(pd.DataFrame(rows))


def _moved(this: tuple[float, float, float], other: tuple[float, float, float]) -> str:
    """Whether a ratio moved beyond both runs' intervals: "yes", "no", or "—" without intervals."""
    (_, low, high), (_, other_low, other_high) = this, other
    if not all(map(math.isfinite, (low, high, other_low, other_high))):
        return "—"
    return "yes" if low > other_high or high < other_low else "no"


def drift_compare_table(data: ReportData, other: ReportData) -> tuple[pd.DataFrame, dict[str, float]]:
    """Endpoint by endpoint, each figure as its ratio to the reference in each run (the machine's
    common factor divided out), the ratio between them, and whether it moved beyond both runs'
    intervals; with the reference's own p50 this run ÷ the other's, by model (that factor)."""
    mine, theirs = headline.frame(data), headline.frame(other)
    if mine.empty or theirs.empty or "p50_ratio" not in mine or "p50_ratio" not in theirs:
        return pd.DataFrame(), {}
    merged = mine.merge(theirs, on=["framework", "model"], suffixes=("", "_other"))
    reference = merged[merged["framework"] == data.reference]
    factor = {
        data.model_label(f["model"]): f["p50"] / f["p50_other"] for f in reference.to_dict("records") if f["p50_other"]
    }
    rows = []
    for f in merged[merged["framework"] != data.reference].to_dict("records"):
        row: dict[str, Any] = {"Framework": data.label(f["framework"]), "Model": data.model_label(f["model"])}
        for key in RATIOS:
            m = HEADLINE[key]
            name = m.name.replace("reference", data.label(str(data.reference)))
            this = (f[key], f[f"{key}_low"], f[f"{key}_high"])
            before = (f[f"{key}_other"], f[f"{key}_low_other"], f[f"{key}_high_other"])
            row[f"{name}: this"] = headline.text(m, *this)
            row[f"{name}: other"] = headline.text(m, *before)
            row[f"{name}: moved ×"] = this[0] / before[0] if before[0] and math.isfinite(this[0]) else math.nan
            row[f"{name}: changed"] = _moved(this, before)
        rows.append(row)
    return (_indexed(pd.DataFrame(rows)) if rows else pd.DataFrame()), factor


def details(table: Any, summary: str) -> str:
    """A table collapsed under its one-line summary (<details>), for tables nobody reads whole."""
    html = table.to_html() if hasattr(table, "to_html") else str(table)
    return f"<details><summary>{summary}</summary>\n{html}\n</details>"


def runs_table(data: ReportData) -> pd.DataFrame:
    """How each combination's run ended; `ok` reads `correct`, like the parity table."""
    columns = ["Framework", "Model", "Status", "Seconds", "Reason"]
    return pd.DataFrame(
        [
            [
                data.matrix.label(r["framework"]),
                r["model"],
                "correct" if r["status"] == "ok" else r["status"].upper(),
                r.get("seconds"),
                r.get("reason", ""),
            ]
            for r in data.runs
        ],
        columns=columns,
    ).set_index(["Framework", "Model"])


def metrics_table(data: ReportData) -> pd.DataFrame:
    return pd.DataFrame(
        {
            name: {
                "accuracy": m["accuracy"],
                "F1": m["f1"],
                "ROC AUC": m["roc_auc"],
                "validation rows": m["n_validation"],
            }
            for name, m in data.metrics.items()
        }
    ).T


def soak_table(data: ReportData) -> pd.DataFrame:
    table = pd.DataFrame(
        [
            {
                "Framework": data.matrix.label(s["framework"]),
                "Model": s.get("model"),
                "Status": s.get("status"),
                "Concurrency": s.get("concurrency"),
                "Seconds": s.get("duration_s"),
                "Requests": s.get("requests"),
                "Errors": s.get("errors"),
                "5xx": s.get("server_errors"),
                "Req/s": s.get("rps"),
                "p99 (ms)": s.get("p99_ms"),
                "RSS after warm-up (MiB)": s.get("rss_warm_mb"),
                "RSS after run (MiB)": s.get("rss_after_mb"),
                "RSS growth (%)": s.get("rss_growth_pct"),
                "Reason": s.get("reason", ""),
            }
            for s in data.soak
        ]
    )
    return _indexed(table)


def _indexed(table: pd.DataFrame) -> pd.DataFrame:
    """Framework and model as the index, so that tables read by endpoint and show no row numbers."""
    return table.set_index(["Framework", "Model"]) if not table.empty else table


def highlight_incorrect(table: pd.DataFrame) -> Any:
    """A Styler that paints red every row whose Status says it is not correct; a table without a
    Status column (the summary holds only correct endpoints) has nothing to paint."""

    def paint(row: pd.Series) -> list[str]:
        bad = "Status" in row.index and str(row["Status"]).lower() not in ("correct", "ok")
        return ["color: #b00020; font-weight: bold" if bad else "" for _ in row]

    return table.style.apply(paint, axis=1).format(_number, na_rep="—")


def _number(value: Any) -> str:
    """Tiny differences in scientific notation (1.2e-07, not 0.000000), the rest to 6 digits."""
    if isinstance(value, float):
        return f"{value:.2e}" if 0 < abs(value) < 1e-3 else f"{value:.6g}"
    return str(value)
