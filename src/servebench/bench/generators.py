"""How far the load generator can be trusted: open loop against the cheapest endpoint there is,
`/health` of the fastest server, at rates up to beyond the fastest endpoint's closed-loop peak.
A rate is *held* when the generator sent within 2% of the offered count and the answers came
back at ≥98% of it; the latencies at that rate are the generator's and the transport's own
overhead, the floor under every figure measured at that rate.

The report shows the self-measurement of each run (results/generator.json). The comparison
between generators that chose oha is reproducible with

    .venv/bin/python -m servebench.bench.generators --server rust-ort --rates 5000,10000,20000,40000,60000

which starts the server pinned to its core, runs each generator on the other core(s), and
prints the table (generators × rates: sent, achieved, p50, p99).
"""

from __future__ import annotations

import argparse
import math
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from servebench.bench.cpus import client_cpus
from servebench.bench.oha import Run, oha_version, run_oha
from servebench.bench.vegeta import Attack, run_attack, summarize_attack

HOLD = 0.02  # the generator holds a rate when it sends, and gets answers, within 2% of it


def within(offered: float, sent: float, achieved: float) -> bool:
    return bool(offered > 0 and abs(sent - offered) <= HOLD * offered and achieved >= (1 - HOLD) * offered)


def _oha(url: str, rate: float, step_s: float, cpus: str | None, connections: int) -> dict[str, Any]:
    r = run_oha(Run(url, connections=connections, duration_s=step_s, rate=rate), cpus)
    return {"generator": f"oha {oha_version()}", **_row(rate, r["sent_rate"], r["achieved_rate"], r)}


def _vegeta(url: str, rate: float, step_s: float, cpus: str | None, _connections: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        targets = Path(tmp) / "targets.json"
        targets.write_text(f'{{"method": "GET", "url": "{url}"}}\n')
        attack = Attack("open", step_s, rate=rate)
        s = summarize_attack(attack, run_attack(attack, targets, cpus))
    fields = {"errors": s["errors"], "p50": s["p50_ms"], "p90": s["p90_ms"], "p99": s["p99_ms"]}
    return {"generator": "vegeta", **_row(rate, s["sent_rate"], s["rps"], fields)}


def _wrk(url: str, _rate: float, step_s: float, cpus: str | None, connections: int) -> dict[str, Any]:
    """wrk is closed loop only: its row is the peak it drives, not a paced rate."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(step_s))}s", "--latency", url]
    if cpus:
        cmd = ["taskset", "-c", cpus, *cmd]
    text = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=step_s + 30).stdout
    rps = next((float(line.split()[1]) for line in text.splitlines() if line.startswith("Requests/sec")), math.nan)
    lat = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in ("50%", "90%", "99%"):
            value = parts[1]
            scale = 1e-3 if value.endswith("us") else 1e3 if value.endswith("s") and not value.endswith("ms") else 1.0
            lat[parts[0]] = float(value.rstrip("mus")) * scale
    fields = {"errors": 0, "p50": lat.get("50%"), "p90": lat.get("90%"), "p99": lat.get("99%")}
    return {"generator": "wrk (closed loop)", **_row(0.0, rps, rps, fields)}


def _row(offered: float, sent_rate: float, achieved: float, r: dict[str, Any]) -> dict[str, Any]:
    return {
        "offered_rate": offered,
        "sent_rate": sent_rate,
        "achieved_rate": achieved,
        "errors": r.get("errors", 0),
        "p50": r.get("p50"),
        "p90": r.get("p90"),
        "p99": r.get("p99"),
        # closed loop (offered 0) paces nothing: neither held nor not
        "held": (within(offered, sent_rate, achieved) and not r.get("errors")) if offered > 0 else None,
    }


GENERATORS = {"oha": _oha, "vegeta": _vegeta, "wrk": _wrk}


def self_measurement(
    health_url: str, framework: str, peak: float, multiples: list[float], step_s: float, cpus: str | None
) -> dict[str, Any]:
    """oha in open loop against `health_url` at each multiple of `peak` (the fastest endpoint's
    capacity, req/s): what the report shows as the generator's own overhead."""
    rows = []
    for m in multiples:
        rate = float(round(m * peak))
        rows.append({"multiple": m, **_oha(health_url, rate, step_s, cpus, 64)})
    return {"framework": framework, "url": health_url, "peak": peak, "client_cpus": cpus, "rows": rows}


def compare(url: str, rates: list[float], step_s: float, cpus: str | None, names: list[str]) -> list[dict[str, Any]]:
    rows = []
    for rate in rates:
        for name in names:
            if name == "wrk" and rate != rates[-1]:
                continue  # closed loop: one row is enough
            rows.append(GENERATORS[name](url, rate, step_s, cpus, 64))
    return rows


def main(argv: list[str] | None = None) -> None:
    import pandas as pd

    from servebench.paths import out_dir
    from servebench.servers import running_server

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", default="rust-ort", help="server id whose /health is the target")
    parser.add_argument("--url", help="an already running server's /health (instead of --server)")
    parser.add_argument("--rates", default="5000,10000,20000,40000,60000")
    parser.add_argument("--step-s", type=float, default=5.0)
    parser.add_argument("--generators", default="oha,vegeta" + (",wrk" if shutil.which("wrk") else ""))
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args(argv)
    rates = [float(r) for r in args.rates.split(",")]
    names = [g.strip() for g in args.generators.split(",") if g.strip()]

    def measure(url: str, cpus: str | None) -> pd.DataFrame:
        rows = [dict(r, repeat=i) for i in range(args.repeat) for r in compare(url, rates, args.step_s, cpus, names)]
        return pd.DataFrame(rows)

    if args.url:
        table = measure(args.url, None)
    else:
        with running_server(args.server, out_dir()) as server:
            table = measure(f"{server['base_url']}/health", client_cpus(str(server.get("cpus") or "") or None))
    with pd.option_context("display.width", 200, "display.max_rows", 200):
        print(table.round(3).to_string(index=False))


if __name__ == "__main__":
    main()
