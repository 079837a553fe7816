"""The report's generated summary: a few sentences a reader can take away."""

from __future__ import annotations

from servebench.report.data import ReportData


def summary_lines(data: ReportData) -> list[str]:
    lines: list[str] = []
    by_model: dict[str, list[dict]] = {}
    for s in data.ok:
        by_model.setdefault(s["model"], []).append(s)
    order = list(data.matrix.models)
    for model, entries in sorted(by_model.items(), key=lambda item: order.index(item[0])):
        best = min(entries, key=lambda s: s["sequential"]["p50"])
        fastapi = next((s for s in entries if s["framework"] == "fastapi"), None)
        text = (
            f"**{data.matrix.models[model]}**: fastest median is {data.matrix.label(best['framework'])} at "
            f"{best['sequential']['p50']:.3f} ms"
        )
        if fastapi and fastapi is not best:
            ratio = fastapi["sequential"]["p50"] / best["sequential"]["p50"]
            text += f", {ratio:.2f}× faster than FastAPI ({fastapi['sequential']['p50']:.3f} ms)"
        load_best = max(entries, key=lambda s: max((x["rps"] for x in s["load"] if x["mode"] == "closed"), default=0))
        peak = max((x["rps"] for x in load_best["load"] if x["mode"] == "closed"), default=0)
        text += f"; highest throughput {data.matrix.label(load_best['framework'])} at {peak:,.0f} req/s."
        lines.append(text)
    floors = [(s["decomposition"]["client_floor_ms"], s["framework"]) for s in data.ok if s.get("decomposition")]
    if floors:
        floor, fastest = min(floors)
        lines.append(
            f"The Python client's own floor, a `/health` round trip to the fastest server "
            f"({data.matrix.label(fastest)}), is {floor:.3f} ms: sequential figures near it mostly measure the "
            "client, not the server. Server-Timing and the load-generator figures show what the servers "
            "themselves can do."
        )
    bad = [r for r in data.runs if r["status"] != "ok"]
    if bad:
        lines.append(
            f"{len(bad)} combination(s) did not pass and are shown below with the reason: "
            + ", ".join(f"{r['framework']} × {r['model']} ({r['status']})" for r in bad)
            + "."
        )
    else:
        lines.append(
            f"All {len(data.runs)} combinations returned the native model's probabilities and were benchmarked."
        )
    return lines
