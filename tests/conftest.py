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
from servebench.export import (
    export_lightgbm_onnx,
    export_pytorch_onnx,
    onnx_probabilities,
    onnx_session,
    write_reference,
)
from servebench.pipeline import Prepared, prepare
from servebench.servers import start_server, stop_server
from servebench.training import (
    lightgbm_probabilities,
    save_lightgbm,
    save_pytorch,
    torch_probabilities,
    train_lightgbm,
    train_pytorch,
)

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
    exported = {
        "pytorch_onnx": export_pytorch_onnx(torch_result.model, models / "pytorch.onnx"),
        "lightgbm_onnx": export_lightgbm_onnx(booster, models / "lightgbm.onnx"),
    }
    onnx = {name: onnx_probabilities(onnx_session(path), data.x_valid) for name, path in exported.items()}
    write_reference(data.valid, {**native, **onnx}, models / "reference.jsonl")
    return {
        "out": out,
        "models": models,
        "data": data,
        "native": native,
        "onnx": onnx,
        "torch": torch_result,
        "booster": booster,
    }


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


class ServerPool:
    """Servers of the test session, each started on a free port the first time a test needs it."""

    def __init__(self, models: Path, out: Path) -> None:
        self.models, self.out = models, out
        self.started: dict[str, Server] = {}

    def __getitem__(self, framework: str) -> Server:
        if framework not in self.started:
            os.environ["SERVEBENCH_MODELS_DIR"] = str(self.models)
            try:
                self.started[framework] = Server(framework, start_server(framework, self.out))
            finally:
                os.environ.pop("SERVEBENCH_MODELS_DIR", None)
        return self.started[framework]

    def restart(self, framework: str) -> Server:
        if framework in self.started:
            stop_server(framework, self.out)
            del self.started[framework]
        return self[framework]

    def stop_all(self) -> None:
        for framework in list(self.started):
            stop_server(framework, self.out)
        self.started.clear()


@pytest.fixture(scope="session")
def servers(artifacts: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerPool]:
    pool = ServerPool(artifacts["models"], tmp_path_factory.mktemp("servers"))
    try:
        yield pool
    finally:
        pool.stop_all()


@pytest.fixture(params=ALL_SERVERS)
def server(request: pytest.FixtureRequest, servers: ServerPool) -> Server:
    return servers[request.param]


def valid_passenger() -> dict[str, Any]:
    return {"Pclass": 3, "Sex": "male", "Age": 22.0, "SibSp": 1, "Parch": 0, "Fare": 7.25}


def assert_close(a: np.ndarray, b: np.ndarray, tol: float) -> None:
    assert np.max(np.abs(np.asarray(a) - np.asarray(b))) <= tol
