"""The report's generated summary: at most five sentences a reader can take away. Nothing here
names a server or a model: the sentences are about whatever the results hold."""

from __future__ import annotations

import math

from servebench.bench.endpoint import STALL_FACTOR
from servebench.report import headline
from servebench.report.data import ReportData
from servebench.report.metrics import HEADLINE

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
    p50, p99, floor, cap, cores = (HEADLINE[k] for k in ("p50", "p99", "floor", "capacity", "cores_per_10k"))
    fastest = h.loc[p50.best(h["p50"])]
    lines.append(
        f"Fastest single request: {data.label(fastest['framework'])} serving {data.model_label(fastest['model'])}, "
        f"{p50.name} {headline.cell('p50', fastest)} {p50.unit} from a native client "
        f"on one connection ({p99.name} {headline.cell('p99', fastest)} {p99.unit})."
    )
    held = h[h["capacity"] > 0]
    if len(held):
        top, least = held.loc[cap.best(held["capacity"])], held.loc[cap.worst(held["capacity"])]
        text = (
            f"Most load held at {p99.name} ≤ {slo:g} {p99.unit} on one server core: {data.label(top['framework'])} "
            f"({data.model_label(top['model'])}) at {headline.rate_text(top['capacity'], top['capacity_at_least'])} "
            f"{cap.unit}, {headline.text(cores, top['cores_per_10k'])} core(s) for 10,000 req/s"
        )
        if (least["framework"], least["model"]) != (top["framework"], top["model"]):
            text += (
                f"; the least, {data.label(least['framework'])} ({data.model_label(least['model'])}) at "
                f"{headline.text(cap, least['capacity'])} {cap.unit}, "
                f"needs {headline.text(cores, least['cores_per_10k'])}"
            )
        lines.append(text + ".")
    ratio = h[h["framework"] != data.reference].dropna(subset=["p50_ratio"]) if "p50_ratio" in h else h.iloc[:0]
    if len(ratio):
        p50r, capr = HEADLINE["p50_ratio"], HEADLINE["capacity_ratio"]
        quick, slow = ratio.loc[p50r.best(ratio["p50_ratio"])], ratio.loc[p50r.worst(ratio["p50_ratio"])]
        text = (
            f"Against {data.label(str(data.reference))} on the same model, round by round: {p50.name} from "
            f"{headline.cell('p50_ratio', quick)}× ({data.label(quick['framework'])}, "
            f"{data.model_label(quick['model'])}) to {headline.cell('p50_ratio', slow)}× "
            f"({data.label(slow['framework'])}, {data.model_label(slow['model'])})"
        )
        caps = ratio.dropna(subset=["capacity_ratio"])
        if len(caps):
            most, least = caps.loc[capr.best(caps["capacity_ratio"])], caps.loc[capr.worst(caps["capacity_ratio"])]
            text += (
                f"; capacity from {headline.cell('capacity_ratio', most)}× ({data.label(most['framework'])}) "
                f"down to {headline.cell('capacity_ratio', least)}× ({data.label(least['framework'])})"
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
    if bad:
        lines.append(
            f"{len(bad)} combination(s) did not pass and are shown with the reason: "
            + ", ".join(f"{r['framework']} × {r['model']} ({r['status']})" for r in bad[:6])
            + (" …" if len(bad) > 6 else "")
            + "."
        )
    elif data.runs:
        unsettled = sum(len(headline.unsettled(part)) for _, part in h.groupby("model"))
        lines.append(
            f"All {len(data.runs)} combinations returned the native model's probabilities"
            + (
                f"; {unsettled} single-request median(s) too uncertain to order against a neighbour or place on "
                "the chart (marked unstable)."
                if unsettled
                else "."
            )
        )
    python = h["python_floor"].dropna()
    if len(python) and math.isfinite(fastest["floor"]):
        client = HEADLINE["python_floor"]
        lines.append(
            f"The original write-up's Python client spends {headline.text(client, python.min())} "
            f"{client.unit} on a /health round trip alone, against {headline.text(floor, fastest['floor'])} "
            f"{floor.unit} for the native client: its figures (in their own section below) measure the client "
            "more than the servers."
        )
    return lines[:MAX_SENTENCES]


def stalled_note(data: ReportData) -> str:
    """How many single-request windows met a stall of the machine and were measured again
    (servebench.bench.endpoint.STALL_FACTOR), for the section of those windows."""
    parts = [((s.get("native") or {}).get("predict") or {}) for s in data.ok]
    stalled = sum(int(p.get("stalled") or 0) for p in parts)
    kept = sum(int((p.get("p50") or {}).get("windows") or 0) for p in parts)
    if not kept:
        return ""
    if not stalled:
        return f"None of the {kept} windows met a stall of the machine."
    return (
        f"{stalled} window(s) met a stall of the machine — the server's /health round trip, measured right "
        f"after each window, above {STALL_FACTOR:g}× its usual — and were measured again; the figures are "
        f"those of the {kept} windows kept (the stalled ones stay in the raw observations)."
    )


def stalled_probes_note(data: ReportData) -> str:
    """How many capacity probes (ladder steps and searches' steps) not held met a stall of the
    machine and were measured again (servebench.bench.ladder.attempt), for the section on load."""
    steps = [
        step
        for s in data.ok
        for step in [
            *(s.get("ladder") or []),
            *(x for search in (s.get("capacity") or {}).get("searches") or [] for x in search.get("steps") or []),
        ]
    ]
    if not steps:
        return ""
    stalled = sum(bool(step.get("stalled")) for step in steps)
    if not stalled:
        return f"None of the {len(steps)} capacity probes met a stall of the machine."
    return (
        f"{stalled} of {len(steps)} capacity probe(s) not held met a stall of the machine — the server's "
        f"/health round trip, measured right after the probe, above {STALL_FACTOR:g}× its usual — and were "
        "measured again instead of counted (they stay in the table below, marked)."
    )
