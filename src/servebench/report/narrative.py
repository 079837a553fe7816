"""The report's generated summary: at most five sentences a reader can take away. Nothing here
names a server or a model: the sentences are about whatever the results hold."""

from __future__ import annotations

import math

from servebench.report import headline
from servebench.report.data import ReportData

MAX_SENTENCES = 5


def summary_lines(data: ReportData) -> list[str]:
    lines: list[str] = []
    bad = [r for r in data.runs if r["status"] != "ok"]
    h = headline.frame(data)
    if h.empty:
        what = (
            "; ".join(f"{r['framework']} × {r['model']}: {r['status']}" for r in bad[:6])
            or "no combination was benchmarked"
        )
        more = f" and {len(bad) - 6} more" if len(bad) > 6 else ""
        return [f"No endpoint was measured: {what}{more}. The tables below give each reason."]
    slo = next((s["capacity"].get("slo_p99_ms") for s in data.ok if s.get("capacity")), None)
    fastest = h.loc[h["p50"].idxmin()]
    lines.append(
        f"Fastest single request: {data.label(fastest['framework'])} serving {data.model_label(fastest['model'])}, "
        f"p50 {headline.fmt(fastest['p50'], fastest['p50_low'], fastest['p50_high'])} ms from a native client "
        f"on one connection (p99 {headline.fmt(fastest['p99'], fastest['p99_low'], fastest['p99_high'])} ms)."
    )
    if h["capacity"].max() > 0:
        top = h.loc[h["capacity"].idxmax()]
        low = h[h["capacity"] > 0].loc[lambda x: x["capacity"].idxmin()]
        text = (
            f"Most load held at p99 ≤ {slo:g} ms on one server core: {data.label(top['framework'])} "
            f"({data.model_label(top['model'])}) at {headline.rate_text(top['capacity'], top['capacity_at_least'])} "
            f"req/s, {top['cores_per_10k']:.1f} core(s) for 10,000 req/s"
        )
        if (low["framework"], low["model"]) != (top["framework"], top["model"]):
            text += (
                f"; the least, {data.label(low['framework'])} ({data.model_label(low['model'])}) at "
                f"{low['capacity']:,.0f} req/s, needs {low['cores_per_10k']:.1f}"
            )
        lines.append(text + ".")
    limit = h[h["at_limit"]]
    if len(limit):
        names = sorted({data.label(f) for f in limit["framework"]})
        lines.append(
            f"{len(limit)} of {len(h)} endpoints ({', '.join(names)}) answer within {headline.TRANSPORT_LIMIT:g}× "
            "of their own server's /health round trip: at the transport's limit, where one request cannot get "
            "much faster."
        )
    python = h["python_floor"].dropna()
    if len(python) and math.isfinite(fastest["floor"]):
        lines.append(
            f"The original write-up's Python client spends {python.min():.2f} ms on a /health round trip "
            f"alone, against {fastest['floor']:.3f} ms for the native client: its figures (in their own section "
            "below) measure the client more than the servers."
        )
    if bad:
        lines.append(
            f"{len(bad)} combination(s) did not pass and are shown with the reason: "
            + ", ".join(f"{r['framework']} × {r['model']} ({r['status']})" for r in bad[:6])
            + (" …" if len(bad) > 6 else "")
            + "."
        )
    elif data.runs:
        unstable = int(h["unstable"].sum())
        lines.append(
            f"All {len(data.runs)} combinations returned the native model's probabilities"
            + (f"; {unstable} had a single-request median not known to ±5% (marked unstable)." if unstable else ".")
        )
    return lines[:MAX_SENTENCES]
