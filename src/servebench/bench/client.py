"""The Python client side: payloads from reference.jsonl, the sequential loop of the original
write-up (one keep-alive httpx connection), and the parity check of an endpoint."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pandas as pd

from servebench.contract import FIELDS

JSON_HEADERS = {"content-type": "application/json"}


def read_reference(path: Path) -> list[dict[str, Any]]:
    with Path(path).open() as lines:
        return [json.loads(line) for line in lines if line.strip()]


def passenger(row: dict[str, Any]) -> dict[str, Any]:
    return {name: row[name] for name in FIELDS}


def payloads(rows: Sequence[dict[str, Any]], batch: int = 1) -> list[bytes]:
    """One passenger a body, or `batch` of them as {"instances": [...]}, cycling through the rows."""
    if batch == 1:
        return [orjson.dumps(passenger(row)) for row in rows]
    return [
        orjson.dumps({"instances": [passenger(rows[(i + j) % len(rows)]) for j in range(batch)]})
        for i in range(0, len(rows), batch)
    ]


def record_requests(
    model: str, rows: Sequence[dict[str, Any]], batch: int
) -> tuple[str, int, int, list[bytes], Callable[[httpx.Client, str, float], dict[str, Any]]]:
    """The record API's path, bodies and parity check for a Titanic model."""

    def check(client: httpx.Client, url: str, tolerance: float) -> dict[str, Any]:
        return check_parity(client, url, model, rows, tolerance)

    return f"/predict/{model}", len(rows), batch, payloads(rows, batch), check


def parse_server_timing(header: str | None) -> float:
    """`app;dur=0.123` → 0.123 (ms); NaN when absent or malformed."""
    if not header:
        return float("nan")
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == "dur":
            try:
                return float(value)
            except ValueError:
                break
    return float("nan")


def sequential(
    client: httpx.Client,
    url: str,
    bodies: Sequence[bytes] | None,
    n_requests: int,
    warmup: int,
) -> pd.DataFrame:
    """`warmup` + `n_requests` requests one after another; POST cycling through `bodies`, or GET
    when `bodies` is None. Every request is recorded; `measured` marks those after the warm-up.
    A failed request (transport error or non-200) keeps its row with ok=False."""
    rows = []
    for i in range(warmup + n_requests):
        start = time.perf_counter_ns()
        status, error, timing = 0, "", None
        try:
            if bodies is None:
                response = client.get(url)
            else:
                response = client.post(url, content=bodies[i % len(bodies)], headers=JSON_HEADERS)
            status = response.status_code
            timing = response.headers.get("server-timing")
            if status != 200:
                error = f"HTTP {status}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        elapsed_ms = (time.perf_counter_ns() - start) / 1e6
        rows.append(
            {
                "i": i,
                "measured": i >= warmup,
                "status": status,
                "ok": status == 200,
                "latency_ms": elapsed_ms,
                "server_ms": parse_server_timing(timing),
                "error": error,
            }
        )
    return pd.DataFrame(rows)


def check_parity(
    client: httpx.Client, url: str, model: str, rows: Sequence[dict[str, Any]], tolerance: float
) -> dict[str, Any]:
    """Every reference row through the endpoint one by one, then all of them as one batch;
    both against the native model's probability in reference.jsonl."""
    expected = np.array([row[model] for row in rows], dtype=np.float64)
    single = np.full(len(rows), np.nan)
    labels_ok = np.zeros(len(rows), dtype=bool)
    errors: list[str] = []
    for i, body in enumerate(payloads(rows)):
        try:
            response = client.post(url, content=body, headers=JSON_HEADERS)
            if response.status_code != 200:
                errors.append(f"row {i}: HTTP {response.status_code} {response.text[:200]}")
                continue
            answer = response.json()
            single[i] = answer["probability"]
            labels_ok[i] = answer["survived"] == int(expected[i] >= 0.5)
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            errors.append(f"row {i}: {type(exc).__name__}: {exc}")
    batch = np.full(len(rows), np.nan)
    try:
        response = client.post(url, json={"instances": [passenger(r) for r in rows]})
        if response.status_code == 200:
            batch = np.array([p["probability"] for p in response.json()["predictions"]], dtype=np.float64)
        else:
            errors.append(f"batch: HTTP {response.status_code} {response.text[:200]}")
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        errors.append(f"batch: {type(exc).__name__}: {exc}")
    diff = np.abs(single - expected)
    batch_diff = np.abs(batch - single) if batch.shape == single.shape else np.array([np.inf])
    max_diff = float(np.nanmax(diff)) if np.isfinite(diff).any() else float("inf")
    result = {
        "rows": len(rows),
        "max_abs_diff": max_diff,
        "label_mismatches": int((~labels_ok).sum()),
        "batch_max_abs_diff": float(np.nanmax(batch_diff)) if np.isfinite(batch_diff).any() else float("inf"),
        "errors": len(errors),
        "first_error": errors[0] if errors else "",
        "tolerance": tolerance,
    }
    result["ok"] = bool(
        not errors
        and max_diff <= tolerance
        and result["label_mismatches"] == 0
        and result["batch_max_abs_diff"] <= tolerance
    )
    return result
