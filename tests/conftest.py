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
from servebench.launch import cores_refusal
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
        # A stack serving the Open Inference Protocol alone has no /health listing its models.
        record = "record" in self.spec.apis
        self.models: list[str] = httpx.get(f"{self.base_url}/health").json()["models"] if record else []

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


class LiveServer:
    """A server of the pool by id: always the running one, also after a test restarted it."""

    def __init__(self, pool: ServerPool, framework: str) -> None:
        self._pool, self._framework = pool, framework

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pool[self._framework], name)


_POOL: list[ServerPool] = []
# Per server id, the position of the last collected test that names it; see pytest_runtest_teardown.
_LAST_USE: dict[str, int] = {}
_POSITION: dict[str, int] = {}


@pytest.fixture(scope="session")
def servers(artifacts: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerPool]:
    pool = ServerPool(artifacts["models"], tmp_path_factory.mktemp("servers"))
    _POOL.append(pool)
    try:
        yield pool
    finally:
        _POOL.clear()
        pool.stop_all()


# Session-scoped, so that the server stays up between its tests; pytest_collection_modifyitems
# puts each server's tests together and pytest_runtest_teardown stops it after its last one.
@pytest.fixture(scope="session", params=ALL_SERVERS)
def server(request: pytest.FixtureRequest, servers: ServerPool) -> Server:
    if why := cores_refusal(registry.server(request.param)):
        pytest.skip(why)
    return LiveServer(servers, request.param)  # type: ignore[return-value]


@pytest.fixture(scope="session")
def production_server(server: Server) -> Server:
    """Every server but those whose description says `production: false` (the development server)."""
    return server


@pytest.hookimpl(tryfirst=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Through `server`, so that these tests join each server's group.
    if "production_server" in metafunc.fixturenames:
        metafunc.definition.add_marker(
            pytest.mark.parametrize("server", PRODUCTION_SERVERS, indirect=True, scope="session")
        )


def _pooled(item: pytest.Item) -> str | None:
    """The pool's server a test runs against, if any."""
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("server") if callspec else None


def _tier(item: pytest.Item) -> int:
    if item.get_closest_marker("e2e"):
        return 3
    if _pooled(item):
        return 1
    return 2 if item.get_closest_marker("servers") else 0


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Units first; then the pool's servers one at a time, each with all its tests; then the tests
    that start servers of their own; the end-to-end runs last, with every pool server down."""
    items.sort(key=lambda i: (_tier(i), ALL_SERVERS.index(_pooled(i)) if _pooled(i) else 0))
    for item in items:
        framework = _pooled(item)
        if framework and item.get_closest_marker("record_api") and "record" not in registry.server(framework).apis:
            reason = f"{framework} serves the Open Inference Protocol alone (apis: [v2]); this checks the record API"
            item.add_marker(pytest.mark.skip(reason=reason))
    _LAST_USE.clear()
    _POSITION.clear()
    for position, item in enumerate(items):
        _POSITION[item.nodeid] = position
        if framework := _pooled(item):
            _LAST_USE[framework] = position


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[None]:
    """After the test's own teardown (which may read the server's log), a server no later test
    runs against is stopped, so that it does not share core 0 with the rest. A later test that
    uses it all the same starts it again."""
    yield
    if not _POOL:
        return
    position = _POSITION.get(item.nodeid, -1)
    for framework in list(_POOL[0].started):
        if _LAST_USE.get(framework, -1) <= position:
            stop_server(framework, _POOL[0].out)
            del _POOL[0].started[framework]


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
