"""Load from a native generator, vegeta: closed-loop concurrency sweeps and open-loop
constant-rate runs, with every request's result kept.

Closed loop (`-rate=0 -workers=C -max-workers=C`): C connections each send as soon as their last
answer arrives, which finds the throughput ceiling but hides queueing (coordinated omission).
Open loop (`-rate=R`): requests leave on schedule whatever the server does, so latency under a
given load is measured honestly.
"""

from __future__ import annotations

import base64
import json
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from servebench.bench.tools import tool_path, tool_version


def vegeta_path() -> Path:
    return tool_path("vegeta")


def vegeta_version() -> str:
    return tool_version("vegeta")


def write_targets(path: Path, url: str, bodies: Sequence[bytes]) -> Path:
    """vegeta's JSON target format; it cycles through the targets in order."""
    with path.open("w") as out:
        for body in bodies:
            target = {
                "method": "POST",
                "url": url,
                "body": base64.b64encode(body).decode(),
                "header": {"Content-Type": ["application/json"]},
            }
            out.write(json.dumps(target) + "\n")
    return path


@dataclass(frozen=True)
class Attack:
    mode: str  # "closed" or "open"
    duration_s: float
    concurrency: int = 0  # closed loop
    rate: float = 0.0  # open loop, requests per second

    @property
    def level(self) -> float:
        return float(self.concurrency if self.mode == "closed" else self.rate)


def run_attack(attack: Attack, targets: Path, cpus: str | None = None, timeout_s: float = 30.0) -> pd.DataFrame:
    """One vegeta run; a row per request: latency_ms, code, ok, error, sent_s (from the start)."""
    vegeta = str(vegeta_path())
    cmd = [
        vegeta,
        "attack",
        "-format=json",
        f"-targets={targets}",
        f"-duration={attack.duration_s}s",
        f"-timeout={timeout_s}s",
        "-keepalive=true",
    ]
    if attack.mode == "closed":
        c = attack.concurrency
        cmd += ["-rate=0", f"-workers={c}", f"-max-workers={c}", f"-connections={c}"]
    else:
        cmd += [f"-rate={max(1, round(attack.rate))}/1s", "-workers=64", "-max-workers=1024"]
    if cpus:
        cmd = ["taskset", "-c", cpus, *cmd]
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "results.bin"
        with raw.open("wb") as sink:
            done = subprocess.run(
                cmd, stdout=sink, stderr=subprocess.PIPE, text=True, timeout=attack.duration_s + timeout_s + 30
            )
        if done.returncode != 0:
            raise RuntimeError(f"vegeta attack failed ({done.returncode}): {done.stderr.strip()[-500:]}")
        encoded = subprocess.run(
            [vegeta, "encode", "-to=json", str(raw)], capture_output=True, check=True, text=True
        ).stdout
    return _frame(encoded)


def _frame(encoded: str) -> pd.DataFrame:
    rows = [json.loads(line) for line in encoded.splitlines() if line.strip()]
    if not rows:
        return pd.DataFrame(columns=["latency_ms", "code", "ok", "error", "sent_s"])
    frame = pd.DataFrame(rows)
    sent = pd.to_datetime(frame["timestamp"], format="ISO8601")
    out = pd.DataFrame(
        {
            "latency_ms": frame["latency"].astype(np.int64) / 1e6,
            "code": frame["code"].astype(int),
            "error": frame["error"].fillna("").astype(str),
            "sent_s": (sent - sent.min()).dt.total_seconds(),
        }
    )
    out["ok"] = (out["code"] == 200) & (out["error"] == "")
    return out


def summarize_attack(attack: Attack, results: pd.DataFrame) -> dict[str, Any]:
    """Throughput over the attack's own span; latency percentiles over successful requests only."""
    ok = results[results["ok"]]
    span = float((results["sent_s"] + results["latency_ms"] / 1e3).max()) if len(results) else 0.0
    lat = ok["latency_ms"].to_numpy()

    def pct(q: float) -> float:
        return float(np.percentile(lat, q)) if lat.size else float("nan")

    codes = results.loc[~results["ok"], "code"].value_counts().to_dict()
    return {
        "mode": attack.mode,
        "concurrency": attack.concurrency,
        "target_rate": attack.rate,
        "duration_s": attack.duration_s,
        "requests": len(results),
        "ok": len(ok),
        "errors": int(len(results) - len(ok)),
        "server_errors": int((results["code"] >= 500).sum()),
        "error_codes": {str(k): int(v) for k, v in codes.items()},
        "first_error": str(results.loc[~results["ok"], "error"].iloc[0]) if len(ok) < len(results) else "",
        "rps": float(len(ok) / span) if span > 0 else 0.0,
        "sent_rate": float(len(results) / attack.duration_s),
        "p50_ms": pct(50),
        "p90_ms": pct(90),
        "p99_ms": pct(99),
        "max_ms": float(lat.max()) if lat.size else float("nan"),
    }
