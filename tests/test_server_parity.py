"""Every framework × model endpoint returns the native model's probabilities on every
validation row, singly and as one batch."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from servebench.bench.client import check_parity, read_reference
from servebench.config import Matrix

from .conftest import ALL_SERVERS, Server

MATRIX = Matrix.load()
ENDPOINTS = [(f, m) for f in ALL_SERVERS for m in MATRIX.served(f)]

pytestmark = pytest.mark.servers


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
