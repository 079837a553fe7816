"""Shared fixtures: real data, a set of models trained for the tests, and real servers."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import numpy as np
import pytest

from servebench import registry
from servebench.data import resolve_data_path
from servebench.quick_models import make
from servebench.servers import start_server, stop_server

ROOT = Path(__file__).resolve().parents[1]
ALL_SERVERS = tuple(registry.servers())
PRODUCTION_SERVERS = tuple(s for s, spec in registry.servers().items() if spec.production)


@pytest.fixture(scope="session")
def titanic_csv() -> Path:
    return resolve_data_path(download=False)


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory, titanic_csv: Path) -> dict[str, Any]:
    """Both models trained (briefly) and exported, with reference.jsonl, in a private outputs folder."""
    return make(tmp_path_factory.mktemp("outputs"), str(titanic_csv))


class Server:
    """A running server of the test session."""

    def __init__(self, framework: str, info: dict[str, Any]) -> None:
        self.framework = framework
        self.spec = registry.server(framework)
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


@pytest.fixture(params=PRODUCTION_SERVERS)
def production_server(request: pytest.FixtureRequest, servers: ServerPool) -> Server:
    """Every server but those whose description says `production: false` (the development server)."""
    return servers[request.param]


def fastapi_app() -> ModuleType:
    """servers/fastapi/app.py, imported from its folder as uvicorn does."""
    spec = importlib.util.spec_from_file_location("servebench_fastapi_app", registry.SERVERS_DIR / "fastapi" / "app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def valid_passenger() -> dict[str, Any]:
    return {"Pclass": 3, "Sex": "male", "Age": 22.0, "SibSp": 1, "Parch": 0, "Fare": 7.25}


def assert_close(a: np.ndarray, b: np.ndarray, tol: float) -> None:
    assert np.max(np.abs(np.asarray(a) - np.asarray(b))) <= tol
