"""The report's charts (matplotlib). Each returns its Figure, or None when the run has nothing to
plot (every endpoint failed, say), so notebooks show it and scripts can save it. Charts take the
endpoints that passed parity only (`ReportData.ok`), whatever servers and models those are, and
are sized to read at 1280 px."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axis import Axis
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FormatStrFormatter, FuncFormatter, NullFormatter

from servebench.report import headline
from servebench.report.data import ReportData
from servebench.report.metrics import HEADLINE, PYTHON_CLIENT

PLAIN = FormatStrFormatter("%g")  # 0.5, 2, 10 rather than 5×10⁻¹ on log axes
THOUSANDS = FuncFormatter(lambda x, _: f"{x / 1000:g}k" if x >= 1000 else f"{x:g}")
WIDTH = 11.5  # inches; at the report's 110 dpi, 1265 px
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]


def _plain(axis: Axis, minor: bool = False) -> None:
    """Plain tick labels; on minor ticks too (only 2 and 5 of each decade, so they never crowd)
    where the axis spans about a decade, or it has none."""
    axis.set_major_formatter(PLAIN)
    axis.set_minor_formatter(_TWO_FIVE if minor else NullFormatter())


def _rates(axis: Axis) -> None:
    """Requests per second on a log axis: 500, 1k, 2k, 5k, 10k."""
    axis.set_major_formatter(THOUSANDS)
    axis.set_minor_formatter(FuncFormatter(lambda x, pos: THOUSANDS(x, pos) if _mantissa(x) in (2, 5) else ""))


def _mantissa(x: float) -> int:
    return round(x / 10 ** math.floor(math.log10(x))) if x > 0 else 0


_TWO_FIVE = FuncFormatter(lambda x, _: f"{x:g}" if _mantissa(x) in (2, 5) else "")


def _models(data: ReportData) -> list[str]:
    return list(dict.fromkeys(s["model"] for s in sorted(data.ok, key=lambda s: data.order(s)[2])))


def _frameworks(data: ReportData) -> list[str]:
    return list(dict.fromkeys(s["framework"] for s in data.ok))


def _colors(data: ReportData) -> dict[str, tuple[float, ...]]:
    """A distinct colour per stack of this run (no greys: those are the charts' references)."""
    present = list(dict.fromkeys(s["framework"] for s in sorted(data.summaries, key=data.order)))
    palette = [c for i, c in enumerate(plt.get_cmap("tab10").colors) if i != 7]
    palette += [c for i, c in enumerate(plt.get_cmap("Dark2").colors) if i != 7]
    # tab10's lighter halves, for runs of more stacks than that: no colour twice up to 25 stacks
    palette += [c for i, c in enumerate(plt.get_cmap("tab20").colors) if i % 2 and i != 15]
    return {f: palette[i % len(palette)] for i, f in enumerate(present)}


def _markers(data: ReportData) -> dict[str, str]:
    return {m: MARKERS[i % len(MARKERS)] for i, m in enumerate(_models(data))}


def _grid(n: int, width: float = WIDTH, height: float = 3.6) -> tuple[Figure, list]:
    cols = min(2, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width, height * rows), squeeze=False)
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def best_corner() -> str:
    """Where the summary chart's best endpoints sit: capacity up the y axis, latency along x, each
    better the way the registry says."""
    up = "top" if HEADLINE["capacity"].direction() == "higher" else "bottom"
    return f"{up} {'left' if HEADLINE['p50'].direction() == 'lower' else 'right'}"


def summary_scatter(data: ReportData) -> Figure | None:
    """Every endpoint by single-request latency (native client, one connection, p50) against
    capacity at the latency target: the best stacks sit top left (`best_corner`). With a reference
    stack measured, both as ratios to the reference's on the same model (which sits at 1, 1): the
    figures that hold from run to run."""
    h = headline.frame(data)
    if h.empty:
        return None
    ratios = "p50_ratio" in h and bool(h["p50_ratio"].notna().any())
    xk, yk = ("p50_ratio", "capacity_ratio") if ratios else ("p50", "capacity")
    h = h.assign(_y=h[yk].where(np.isfinite(h[yk]) & (h[yk] > 0), 0.0))
    p50, p99, cap = HEADLINE["p50"], HEADLINE["p99"], HEADLINE["capacity"]
    colors, markers = _colors(data), _markers(data)
    fig, ax = plt.subplots(figsize=(WIDTH, 5.2))
    held_any = h["_y"][h["_y"] > 0]
    # An endpoint that held no rate at all sits on a line below the others, marked as such.
    floor_y = float(held_any.min()) / 2 if len(held_any) else 1.0
    if (h["_y"] <= 0).any():
        ax.axhline(floor_y, color="grey", linewidth=0.8, linestyle=":")
        ax.annotate(
            "held no rate of the ladder",
            (0.01, floor_y),
            xycoords=("axes fraction", "data"),
            fontsize=8,
            color="grey",
            va="bottom",
        )
    if ratios:
        ax.axvline(1.0, color="grey", linewidth=0.8)
        ax.axhline(1.0, color="grey", linewidth=0.8)
    for f in h.to_dict("records"):
        y = f["_y"] if f["_y"] > 0 else floor_y
        ax.errorbar(
            f[xk],
            y,
            xerr=[[max(0.0, f[xk] - f[f"{xk}_low"])], [max(0.0, f[f"{xk}_high"] - f[xk])]]
            if np.isfinite(f[f"{xk}_low"])
            else None,
            yerr=[[max(0.0, y - f[f"{yk}_low"])], [max(0.0, f[f"{yk}_high"] - y)]]
            if f["_y"] > 0 and np.isfinite(f[f"{yk}_low"])
            else None,
            fmt=markers[f["model"]],
            color=colors[f["framework"]],
            markersize=9,
            capsize=3,
            markeredgecolor="black" if f["capacity_at_least"] else colors[f["framework"]],
        )
    slo = next((s["capacity"].get("slo_p99_ms") for s in data.ok if s.get("capacity")), None)
    ax.set_xscale("log")
    ax.set_yscale("log")
    _plain(ax.xaxis, minor=True)
    if ratios:
        _plain(ax.yaxis, minor=True)
        ax.set_xlabel(f"single-request {p50.name} ÷ the reference's, same model (×, log; bars: interval over rounds)")
        ax.set_ylabel(
            f"{cap.name.lower()} at {p99.name} ≤ {slo:g} {p99.unit} ÷ the reference's (×, log)"
            if slo
            else f"{cap.name.lower()} ÷ the reference's (×, log)"
        )
    else:
        _rates(ax.yaxis)
        ax.set_xlabel(
            f"single-request latency, {p50.name} ({p50.unit}, log): native client, one connection; "
            "bars: interval of the median"
        )
        bars = "bars: range of estimates"
        ax.set_ylabel(
            f"{cap.name.lower()} at {p99.name} ≤ {slo:g} {p99.unit} ({cap.unit} on one core, log; {bars})"
            if slo
            else f"{cap.name.lower()} ({cap.unit}, log)"
        )
    ax.grid(True, which="both", alpha=0.3)
    stacks = [
        Line2D([], [], color=colors[f], marker="o", linestyle="", label=data.label(f))
        for f in dict.fromkeys(h["framework"])
    ]
    models = [
        Line2D([], [], color="grey", marker=markers[m], linestyle="", label=data.model_label(m))
        for m in dict.fromkeys(h["model"])
    ]
    ax.legend(handles=stacks + models, fontsize=8, bbox_to_anchor=(1.01, 1), loc="upper left")
    if ratios:
        title = f"Against the reference, {data.label(str(data.reference))} (at 1, 1): latency against load held"
    else:
        title = "Each endpoint: latency of one request against how much load it holds"
    ax.set_title(f"{title} (best: {best_corner()})")
    fig.tight_layout()
    return fig


def ladder(data: ReportData) -> Figure | None:
    """p99 (solid) and p50 (dashed) against offered rate, one line per stack, one panel per model."""
    models = _models(data)
    if not models or not any(s.get("ladder") for s in data.ok):
        return None
    colors = _colors(data)
    fig, axes = _grid(len(models))
    slo = None
    for ax, model in zip(axes, models, strict=True):
        for s in data.ok:
            if s["model"] != model or not s.get("ladder"):
                continue
            steps = pd.DataFrame(s["ladder"]).sort_values("offered_rate")
            slo = (s.get("capacity") or {}).get("slo_p99_ms", slo)
            color = colors[s["framework"]]
            ax.plot(
                steps["offered_rate"],
                steps["p99"],
                color=color,
                marker="o",
                markersize=3,
                label=data.label(s["framework"]),
            )
            ax.plot(steps["offered_rate"], steps["p50"], color=color, linestyle="--", linewidth=1)
            bad = steps[~steps["held"].astype(bool)]
            ax.plot(bad["offered_rate"], bad["p99"], linestyle="", marker="x", color=color, markersize=8)
        if slo:
            ax.axhline(slo, color="black", linewidth=0.8, linestyle=":")
        ax.set_xscale("log")
        ax.set_yscale("log")
        _rates(ax.xaxis)
        _plain(ax.yaxis)
        ax.set_title(data.model_label(model))
        ax.set_xlabel("offered rate (req/s, log)")
        ax.set_ylabel("latency (ms, log)")
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle(
        "Open loop: p99 (solid) and p50 (dashed) against offered rate; × a rate not held"
        + (f"; dotted: the {slo:g} ms target" if slo else "")
    )
    _legend_below(fig, axes)
    return fig


def _legend_below(fig: Figure, axes: list) -> None:
    """One legend of the stacks for all panels, below them, so that no line is hidden under it."""
    handles: dict[str, object] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    rows = math.ceil(len(handles) / 5)
    # About a fifth of an inch a row of entries, whatever the number of panels above them.
    fig.tight_layout(rect=(0, min(0.3, (0.22 * rows + 0.1) / fig.get_figheight()), 1, 1))
    fig.legend(handles.values(), handles.keys(), loc="lower center", ncol=min(5, len(handles)), fontsize=8)


def native_latency(data: ReportData) -> Figure | None:
    """Native single-request p50 (bar, with the interval of its median) and p99 (tick), beside the
    server's /health floor and its Server-Timing."""
    h = headline.frame(data)
    if h.empty:
        return None
    h = h.iloc[::-1].reset_index(drop=True)
    p50, p99, floor, server = (HEADLINE[k] for k in ("p50", "p99", "floor", "server_ms"))
    colors = _colors(data)
    fig, ax = plt.subplots(figsize=(WIDTH, 0.32 * len(h) + 2.2))
    y = np.arange(len(h))
    ax.barh(
        y,
        h["p50"],
        color=[colors[f] for f in h["framework"]],
        alpha=0.8,
        xerr=[(h["p50"] - h["p50_low"]).clip(lower=0), (h["p50_high"] - h["p50"]).clip(lower=0)],
        capsize=2,
        label=f"{p50.name} (interval of the median)",
    )
    ax.plot(h["p99"], y, "|", color="black", markersize=12, label=p99.name)
    ax.plot(h["floor"], y, "d", color="white", markeredgecolor="black", label=f"{floor.name} (p50)")
    ax.plot(h["server_ms"], y, "o", color="#d62728", markersize=4, label=f"{server.name} p50 (in the handler)")
    ax.set_yticks(y, [f"{data.label(f)} · {m}" for f, m in zip(h["framework"], h["model"], strict=True)], fontsize=8)
    ax.set_xscale("log")
    _plain(ax.xaxis, minor=True)
    ax.set_xlabel(f"{p50.unit} (log)")
    ax.grid(True, axis="x", which="both", alpha=0.3)
    ax.legend(fontsize=8, bbox_to_anchor=(1.01, 1), loc="upper left")
    ax.set_title("Single-request latency from the native client (oha, one connection, sequential)")
    fig.tight_layout()
    return fig


def closed_loop(data: ReportData) -> Figure | None:
    """Closed-loop throughput against connections, a line per stack, one panel per model."""
    entries = [s for s in data.ok if s.get("load")]
    if not entries:
        return None
    colors = _colors(data)
    models = [m for m in _models(data) if any(s["model"] == m for s in entries)]
    fig, axes = _grid(len(models))
    for ax, model in zip(axes, models, strict=True):
        for s in entries:
            if s["model"] != model:
                continue
            closed = pd.DataFrame(s["load"])
            x = closed.get("connections", closed.get("concurrency"))
            y = closed.get("achieved_rate", closed.get("rps"))
            ax.plot(x, y, color=colors[s["framework"]], marker="o", markersize=3, label=data.label(s["framework"]))
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(PLAIN)
        ax.set_yscale("log")
        _rates(ax.yaxis)
        ax.set_title(data.model_label(model))
        ax.set_xlabel("connections (log₂)")
        ax.set_ylabel("answers / s (log)")
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle("Closed loop: throughput ceiling on one server core (oha)")
    _legend_below(fig, axes)
    return fig


def _python_predict(data: ReportData) -> pd.DataFrame:
    seq = data.sequential
    if seq.empty:
        return seq
    good = seq[(seq["phase"] == "predict") & seq["measured"] & seq["ok"]]
    keys = data.ok_keys
    return good[[(f, m) in keys for f, m in zip(good["framework"], good["model"], strict=True)]]


def latency_ecdf(data: ReportData) -> Figure | None:
    """Distribution of the Python client's sequential latency per endpoint, log axis: one panel per model."""
    good = _python_predict(data)
    models = [m for m in _models(data) if m in set(good["model"])] if not good.empty else []
    if not models:
        return None
    colors = _colors(data)
    fig, axes = _grid(len(models), height=3.2)
    for ax, model in zip(axes, models, strict=True):
        for framework in _frameworks(data):
            x = np.sort(good[(good["framework"] == framework) & (good["model"] == model)]["latency_ms"].to_numpy())
            if x.size:
                ax.plot(x, np.arange(1, x.size + 1) / x.size, label=data.label(framework), color=colors[framework])
        ax.set_xscale("log")
        _plain(ax.xaxis)
        ax.set_title(data.model_label(model))
        ax.set_xlabel("latency (ms, log)")
        ax.set_ylabel("fraction ≤ x")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle("The original method: sequential latency distribution (Python httpx client, keep-alive)")
    fig.tight_layout()
    return fig


def percentiles_by_framework(data: ReportData) -> Figure | None:
    """The Python client's p50 (solid) and p99 (hatched) by framework, grouped by model."""
    entries = [s for s in data.ok if s.get("sequential")]
    if not entries:
        return None
    models, frameworks, colors = _models(data), _frameworks(data), _colors(data)
    median, tail = PYTHON_CLIENT["p50"], PYTHON_CLIENT["p99"]
    by_key = {(s["framework"], s["model"]): s["sequential"] for s in entries}
    fig, ax = plt.subplots(figsize=(WIDTH, 4.2))
    width = 0.8 / max(1, len(frameworks))
    for j, framework in enumerate(frameworks):
        xs = [i + (j - (len(frameworks) - 1) / 2) * width for i in range(len(models))]
        p50 = [by_key.get((framework, m), {}).get("p50", np.nan) for m in models]
        p99 = [by_key.get((framework, m), {}).get("p99", np.nan) for m in models]
        ax.bar(xs, p99, width, color=colors[framework], alpha=0.35, hatch="//", edgecolor=colors[framework])
        ax.bar(xs, p50, width, color=colors[framework], label=data.label(framework))
    ax.set_xticks(range(len(models)), [data.model_label(m) for m in models])
    ax.set_yscale("log")
    _plain(ax.yaxis, minor=True)
    ax.set_ylabel(f"{median.unit} (log): solid {median.name}, hatched {tail.name}")
    ax.legend(fontsize=8, bbox_to_anchor=(1.01, 1), loc="upper left")
    ax.grid(True, axis="y", which="both", alpha=0.3)
    ax.set_title("The original method: sequential latency from a Python client, by framework, grouped by model")
    fig.tight_layout()
    return fig


def decomposition(data: ReportData) -> Figure | None:
    """The Python client's median latency split into its /health floor, server time and the rest."""
    rows = [
        {"endpoint": f"{data.label(s['framework'])} · {s['model']}", **s["decomposition"]}
        for s in data.ok
        if s.get("decomposition")
    ]
    if not rows:
        return None
    frame = pd.DataFrame(rows).set_index("endpoint")[["client_floor_ms", "server_ms", "rest_ms"]]
    frame.columns = [
        "a /health round trip (client, transport, least framework work)",
        "inside the handler (Server-Timing)",
        "the rest (body, routing, response)",
    ]
    fig, ax = plt.subplots(figsize=(WIDTH, 0.32 * len(frame) + 1.6))
    frame.iloc[::-1].plot.barh(stacked=True, ax=ax, color=["#bbbbbb", "#1f77b4", "#ff7f0e"], width=0.75)
    ax.set_xlabel("median ms per request (Python client)")
    ax.set_ylabel("")
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("The original method: where a sequential request's time goes")
    fig.tight_layout()
    return fig
