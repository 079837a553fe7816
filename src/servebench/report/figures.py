"""The report's charts (matplotlib). Each returns its Figure, so notebooks show it and
scripts can save it."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axis import Axis
from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter, NullFormatter

from servebench.report.data import ReportData

PLAIN = FormatStrFormatter("%g")  # 0.5, 2, 10 rather than 5×10⁻¹ on log axes


def _plain(axis: Axis, minor: bool = False) -> None:
    """Plain tick labels; minor ones too where the axis spans about a decade, or it has none."""
    axis.set_major_formatter(PLAIN)
    axis.set_minor_formatter(PLAIN if minor else NullFormatter())


def _models(data: ReportData) -> list[str]:
    present = {s["model"] for s in data.ok}
    return [m for m in data.matrix.models if m in present] + sorted(present - set(data.matrix.models))


def _frameworks(data: ReportData) -> list[str]:
    present = {s["framework"] for s in data.ok}
    return [f for f in data.matrix.frameworks if f in present] + sorted(present - set(data.matrix.frameworks))


def _colors(data: ReportData) -> dict[str, tuple[float, ...]]:
    cmap = plt.get_cmap("tab20" if len(data.matrix.frameworks) > 10 else "tab10")
    present = {s["framework"] for s in data.summaries}
    order = [*data.matrix.frameworks, *sorted(present - set(data.matrix.frameworks))]
    return {f: cmap(i % cmap.N) for i, f in enumerate(order)}


def latency_ecdf(data: ReportData) -> Figure:
    """Distribution of sequential latency per endpoint, log axis: one panel per model."""
    models, colors = _models(data), _colors(data)
    seq = data.sequential
    good = seq[(seq["phase"] == "predict") & seq["measured"] & seq["ok"]]
    fig, axes = plt.subplots(1, len(models), figsize=(4 * len(models), 3.4), sharey=True, squeeze=False)
    for ax, model in zip(axes[0], models, strict=True):
        for framework in _frameworks(data):
            x = np.sort(good[(good["framework"] == framework) & (good["model"] == model)]["latency_ms"].to_numpy())
            if x.size:
                ax.plot(
                    x, np.arange(1, x.size + 1) / x.size, label=data.matrix.label(framework), color=colors[framework]
                )
        ax.set_xscale("log")
        _plain(ax.xaxis)
        ax.set_title(data.matrix.models[model])
        ax.set_xlabel("latency (ms, log)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("fraction of requests ≤ x")
    axes[0][-1].legend(fontsize=8, loc="lower right")
    fig.suptitle("Sequential latency distribution per endpoint (Python httpx client, keep-alive)")
    fig.tight_layout()
    return fig


def percentiles_by_framework(data: ReportData) -> Figure:
    """p50 (solid) and p99 (hatched) by framework, grouped by model."""
    models, frameworks, colors = _models(data), _frameworks(data), _colors(data)
    by_key = {(s["framework"], s["model"]): s["sequential"] for s in data.ok}
    fig, ax = plt.subplots(figsize=(10, 4))
    width = 0.8 / max(1, len(frameworks))
    for j, framework in enumerate(frameworks):
        xs = [i + (j - (len(frameworks) - 1) / 2) * width for i in range(len(models))]
        p50 = [by_key.get((framework, m), {}).get("p50", np.nan) for m in models]
        p99 = [by_key.get((framework, m), {}).get("p99", np.nan) for m in models]
        ax.bar(xs, p99, width, color=colors[framework], alpha=0.35, hatch="//", edgecolor=colors[framework])
        ax.bar(xs, p50, width, color=colors[framework], label=data.matrix.label(framework))
    ax.set_xticks(range(len(models)), [data.matrix.models[m] for m in models])
    ax.set_yscale("log")
    _plain(ax.yaxis, minor=True)
    ax.set_ylabel("ms (log): solid p50, hatched p99")
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", which="both", alpha=0.3)
    ax.set_title("Sequential latency by framework, grouped by model")
    fig.tight_layout()
    return fig


def load_curves(data: ReportData) -> Figure:
    """Closed-loop throughput and p99 against concurrency, a line per endpoint."""
    colors = _colors(data)
    dashes = ["-", "--", ":", "-."]
    styles = {m: dashes[i % len(dashes)] for i, m in enumerate(_models(data))}
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    for s in data.ok:
        closed = pd.DataFrame([x for x in s["load"] if x["mode"] == "closed"])
        if closed.empty:
            continue
        kw = {
            "color": colors[s["framework"]],
            "linestyle": styles.get(s["model"], "-"),
            "marker": "o",
            "markersize": 3,
            "label": f"{data.matrix.label(s['framework'])} · {s['model']}",
        }
        left.plot(closed["concurrency"], closed["rps"], **kw)
        right.plot(closed["concurrency"], closed["p99_ms"], **kw)
    for ax in (left, right):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrent connections (log₂)")
        ax.grid(True, which="both", alpha=0.3)
    left.set_ylabel("successful requests / s (log)")
    left.set_yscale("log")
    right.set_ylabel("p99 latency (ms, log)")
    right.set_yscale("log")
    _plain(right.yaxis)
    right.legend(fontsize=7, bbox_to_anchor=(1.02, 1), loc="upper left")
    fig.suptitle("Under load (vegeta, closed loop)")
    fig.tight_layout()
    return fig


def decomposition(data: ReportData) -> Figure:
    """Median sequential latency split into client floor, server time and the rest."""
    rows = [{"endpoint": f"{data.matrix.label(s['framework'])} · {s['model']}", **s["decomposition"]} for s in data.ok]
    frame = pd.DataFrame(rows).set_index("endpoint")[["client_floor_ms", "server_ms", "rest_ms"]]
    frame.columns = [
        "a /health round trip (client, transport, least framework work)",
        "inside the handler (Server-Timing)",
        "the rest (body, routing, response)",
    ]
    fig, ax = plt.subplots(figsize=(9, 0.35 * len(frame) + 1.4))
    frame.iloc[::-1].plot.barh(stacked=True, ax=ax, color=["#bbbbbb", "#1f77b4", "#ff7f0e"], width=0.75)
    ax.set_xlabel("median ms per request")
    ax.set_ylabel("")
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("Where a sequential request's time goes")
    fig.tight_layout()
    return fig
