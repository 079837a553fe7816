"""Shared fixtures: real data, a set of models trained for the tests, and real servers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from servebench.data import resolve_data_path
from servebench.export import export_lightgbm_onnx, export_pytorch_onnx, onnx_probabilities, onnx_session, write_reference
from servebench.pipeline import Prepared, prepare
from servebench.servers import start_server, stop_server
from servebench.training import (
    lightgbm_probabilities, save_lightgbm, save_pytorch, torch_probabilities, train_lightgbm, train_pytorch,
)  # fmt: skip

ROOT = Path(__file__).resolve().parents[1]
PYTHON_SERVERS = ("fastapi", "flask", "flask-dev")
RUST_SERVERS = ("rust-ort", "rust-tract")
ALL_SERVERS = PYTHON_SERVERS + RUST_SERVERS


@pytest.fixture(scope="session")
def titanic_csv() -> Path:
    return resolve_data_path(download=False)


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory, titanic_csv: Path) -> dict[str, Any]:
    """Both models trained (briefly) and exported, with reference.jsonl, in a private outputs folder."""
    out = tmp_path_factory.mktemp("outputs")
    data: Prepared = prepare(str(titanic_csv), 0.2, 42, out)
    models = out / "models"
    torch_result = train_pytorch(data.x_train, data.y_train, data.x_valid, data.y_valid, max_epochs=60, patience=10)
    save_pytorch(torch_result, models / "pytorch.pt")
    booster = train_lightgbm(data.x_train, data.y_train, data.x_valid, data.y_valid, n_estimators=60)
    save_lightgbm(booster, models / "lightgbm.txt")
    native = {
        "pytorch": torch_probabilities(torch_result.model, data.x_valid),
        "lightgbm": lightgbm_probabilities(booster, data.x_valid),
    }
    onnx = {
        "pytorch_onnx": onnx_probabilities(onnx_session(export_pytorch_onnx(torch_result.model, models / "pytorch.onnx")), data.x_valid),
        "lightgbm_onnx": onnx_probabilities(onnx_session(export_lightgbm_onnx(booster, models / "lightgbm.onnx")), data.x_valid),
    }  # fmt: skip
    write_reference(data.valid, {**native, **onnx}, models / "reference.jsonl")
    return {"out": out, "models": models, "data": data, "native": native, "onnx": onnx,
            "torch": torch_result, "booster": booster}  # fmt: skip


class Server:
    """A running server of the test session."""

    def __init__(self, framework: str, info: dict[str, Any]) -> None:
        self.framework = framework
        self.info = info
        self.base_url: str = info["base_url"]
        self.pid = int(info["pid"])
        self.models: list[str] = httpx.get(f"{self.base_url}/health").json()["models"]

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"


@pytest.fixture(scope="session")
def servers(artifacts: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Server]]:
    """Every server, started once for the session on free ports, stopped at the end."""
    run_out = tmp_path_factory.mktemp("servers")
    os.environ["SERVEBENCH_MODELS_DIR"] = str(artifacts["models"])
    started: dict[str, Server] = {}
    try:
        for framework in ALL_SERVERS:
            started[framework] = Server(framework, start_server(framework, run_out))
        yield started
    finally:
        for framework in started:
            stop_server(framework, run_out)
        os.environ.pop("SERVEBENCH_MODELS_DIR", None)


@pytest.fixture(params=ALL_SERVERS)
def server(request: pytest.FixtureRequest, servers: dict[str, Server]) -> Server:
    return servers[request.param]


def valid_passenger() -> dict[str, Any]:
    return {"Pclass": 3, "Sex": "male", "Age": 22.0, "SibSp": 1, "Parch": 0, "Fare": 7.25}


def assert_close(a: np.ndarray, b: np.ndarray, tol: float) -> None:
    assert np.max(np.abs(np.asarray(a) - np.asarray(b))) <= tol
