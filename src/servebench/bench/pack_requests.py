"""A model pack's requests over the Open Inference Protocol, and its parity check: every sample
row singly, then all rows as one batch, against onnxruntime run in-process on the same rows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import orjson

from servebench.packs import ModelPack


def infer_path(model: str) -> str:
    return f"/v2/models/{model}/infer"


def bodies(pack: ModelPack, batch: int) -> list[bytes]:
    """`batch` sample rows a request, cycling through the sample."""
    n = pack.rows
    return [orjson.dumps(pack.v2_request([(i + j) % n for j in range(batch)])) for i in range(0, n, batch)]


def difference(answer: dict[str, Any], expected: dict[str, np.ndarray]) -> float:
    """The largest |got − expected| / max(1, |expected|) over the outputs compared; inf when an
    output is missing or of another shape."""
    got = {o.get("name"): o for o in answer.get("outputs", [])}
    worst = 0.0
    for name, want in expected.items():
        out = got.get(name)
        if out is None or list(out.get("shape", [])) != list(want.shape):
            return float("inf")
        data = np.asarray(out.get("data"), dtype=np.float64).reshape(-1)
        flat = want.astype(np.float64).reshape(-1)
        if data.shape != flat.shape:
            return float("inf")
        worst = max(worst, float(np.max(np.abs(data - flat) / np.maximum(1.0, np.abs(flat)), initial=0.0)))
    return worst


def check(client: httpx.Client, url: str, pack: ModelPack) -> dict[str, Any]:
    errors: list[str] = []
    single = np.full(pack.rows, np.inf)

    def ask(rows: list[int], what: str) -> float:
        try:
            response = client.post(
                url, content=orjson.dumps(pack.v2_request(rows)), headers={"content-type": "application/json"}
            )
            if response.status_code != 200:
                errors.append(f"{what}: HTTP {response.status_code} {response.text[:200]}")
                return float("inf")
            return difference(response.json(), pack.expected(rows))
        except (httpx.HTTPError, ValueError, TypeError) as exc:
            errors.append(f"{what}: {type(exc).__name__}: {exc}")
            return float("inf")

    for i in range(pack.rows):
        single[i] = ask([i], f"row {i}")
    batch = ask(list(range(pack.rows)), "batch") if pack.max_batch is None and pack.rows > 1 else 0.0
    worst = float(np.max(single))
    result = {
        "rows": pack.rows,
        "max_abs_diff": worst,
        "label_mismatches": 0,
        "batch_max_abs_diff": batch,
        "errors": len(errors),
        "first_error": errors[0] if errors else "",
        "tolerance": pack.tolerance,
        "outputs": list(pack.compare),
    }
    result["ok"] = bool(not errors and worst <= pack.tolerance and batch <= pack.tolerance)
    return result


def pack_requests(
    pack: ModelPack, batch: int
) -> tuple[str, int, int, list[bytes], Callable[[httpx.Client, str, float], dict[str, Any]]]:
    """The pack's path, bodies and parity check (at the pack's own tolerance)."""
    if pack.max_batch is not None and batch > pack.max_batch:
        batch = pack.max_batch
    return (
        infer_path(pack.name),
        pack.rows,
        batch,
        bodies(pack, batch),
        lambda client, url, _tolerance: check(client, url, pack),
    )
