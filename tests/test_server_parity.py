"""Every framework × model endpoint returns the native model's probabilities on every
validation row, singly and as one batch."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from servebench.bench.client import check_parity, passenger, read_reference
from servebench.config import Matrix

from .conftest import ALL_SERVERS, Server

MATRIX = Matrix.load()
ENDPOINTS = [(f, m) for f in ALL_SERVERS for m in MATRIX.served(f)]

# The record API: a stack serving the Open Inference Protocol alone is passed by (conftest).
pytestmark = [pytest.mark.servers, pytest.mark.record_api]


@pytest.mark.parametrize(
    "server, model", ENDPOINTS, ids=[f"{f}-{m}" for f, m in ENDPOINTS], indirect=["server"], scope="session"
)
def test_endpoint_parity(server: Server, model: str, artifacts: dict[str, Any]) -> None:
    rows = read_reference(artifacts["models"] / "reference.jsonl")
    with httpx.Client(timeout=30) as client:
        result = check_parity(client, server.url(f"/predict/{model}"), model, rows, tolerance=1e-4)
    assert result["ok"], result
    assert result["rows"] == len(rows) and result["batch_max_abs_diff"] <= 1e-4


def test_health_names_framework_and_models(server: Server) -> None:
    health = httpx.get(server.url("/health")).json()
    assert health == {
        "status": "ok",
        "framework": server.framework,
        "models": sorted(MATRIX.served(server.framework)),
    }


@pytest.mark.parametrize("server", ALL_SERVERS, indirect=True, scope="session")
def test_concurrent_requests_each_get_their_own_answer(server: Server, artifacts: dict[str, Any]) -> None:
    """Many bodies in flight at once, single rows and batches of three mixed: each answer is its
    own body's, in its shape. A server that gathers requests into one call (adaptive batching)
    must split the answers back as they came."""
    model = MATRIX.served(server.framework)[0]
    rows = read_reference(artifacts["models"] / "reference.jsonl")[:60]
    bodies = [
        {"instances": [passenger(r) for r in rows[i : i + 3]]} if i % 2 else passenger(rows[i]) for i in range(0, 60, 3)
    ]

    async def send_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=len(bodies))) as client:
            url = server.url(f"/predict/{model}")
            return await asyncio.gather(*(client.post(url, json=body) for body in bodies))

    answers = asyncio.run(send_all())
    for i, (body, answer) in enumerate(zip(bodies, answers, strict=True)):
        assert answer.status_code == 200, answer.text
        start = i * 3
        if "instances" in body:
            got = [p["probability"] for p in answer.json()["predictions"]]
            want = [row[model] for row in rows[start : start + 3]]
        else:
            got, want = [answer.json()["probability"]], [rows[start][model]]
        assert got == pytest.approx(want, abs=1e-4), (i, body)
