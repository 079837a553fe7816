"""The report's tables: the original write-up's three, with percentile columns added, and the
correctness, load, cost and run-status tables."""

from __future__ import annotations

from typing import Any

import pandas as pd

from servebench.report.data import ReportData

ORIGINAL = ["avg", "min", "max", "total", "variance"]
ADDED = ["p50", "p90", "p99", "p99_9", "std", "mean_ci_low", "mean_ci_high", "n"]
NAMES = {
    "avg": "Avg (ms)",
    "min": "Min (ms)",
    "max": "Max (ms)",
    "total": "Total (ms)",
    "variance": "Variance (ms²)",
    "p50": "p50",
    "p90": "p90",
    "p99": "p99",
    "p99_9": "p99.9",
    "std": "Std",
    "mean_ci_low": "Avg 95% CI low",
    "mean_ci_high": "Avg 95% CI high",
    "n": "Requests",
}


def endpoint_table(data: ReportData) -> pd.DataFrame:
    """Framework × model: the original five columns, then percentiles and the CI of the mean."""
    rows = []
    for s in data.ok:
        row = {"Framework": data.matrix.label(s["framework"]), "Model": s["model"]}
        row.update({NAMES[k]: s["sequential"].get(k) for k in ORIGINAL + ADDED})
        row["Failed"] = s["sequential"].get("failed", {}).get("count", 0)
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
    table = pd.DataFrame(
        {
            "Avg (ms)": grouped.mean(),
            "p50": grouped.median(),
            "p99": grouped.quantile(0.99),
            "Models": good.groupby("framework")["model"].nunique(),
        }
    )
    table.index = [data.matrix.label(f) for f in table.index]
    return table.sort_values("Avg (ms)")


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


def load_table(data: ReportData) -> pd.DataFrame:
    rows = []
    for s in data.ok:
        for level in s["load"]:
            rows.append(
                {
                    "Framework": data.matrix.label(s["framework"]),
                    "Model": s["model"],
                    "Mode": level["mode"],
                    "Concurrency": level["concurrency"] or None,
                    "Target rate (req/s)": level["target_rate"] or None,
                    "Sent rate (req/s)": level.get("sent_rate"),
                    "Requests": level["requests"],
                    "Errors": level["errors"],
                    "Req/s": level["rps"],
                    "p50 (ms)": level["p50_ms"],
                    "p99 (ms)": level["p99_ms"],
                }
            )
    return _indexed(pd.DataFrame(rows))


def cost_table(data: ReportData) -> pd.DataFrame:
    rows = []
    for s in data.ok:
        c = s.get("cost") or {}
        rows.append(
            {
                "Framework": data.matrix.label(s["framework"]),
                "Model": s["model"],
                "Peak RSS (MiB)": c.get("peak_rss_mb"),
                "CPU s / 1000 req": c.get("cpu_s_per_1000"),
                "Start-up (s)": c.get("startup_s"),
            }
        )
    return _indexed(pd.DataFrame(rows))


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
    """A Styler that paints every non-correct row red."""

    def paint(row: pd.Series) -> list[str]:
        bad = str(row.get("Status", "")).lower() not in ("correct", "ok")
        return ["color: #b00020; font-weight: bold" if bad else "" for _ in row]

    return table.style.apply(paint, axis=1).format(_number, na_rep="—")


def _number(value: Any) -> str:
    """Tiny differences in scientific notation (1.2e-07, not 0.000000), the rest to 6 digits."""
    if isinstance(value, float):
        return f"{value:.2e}" if 0 < abs(value) < 1e-3 else f"{value:.6g}"
    return str(value)
