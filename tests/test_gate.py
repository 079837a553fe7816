"""The contract's door of the ASGI apps (servebench.serving.gate), driven in-process: which media
types it lets through, how it refuses a body over the limit and how much of it it drains first,
and the error body of each refusal. The servers themselves are held to the same rules over HTTP in
test_server_contract.py and test_transport.py."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from servebench.contract import DRAIN_LIMIT, MAX_BODY_BYTES
from servebench.serving.errors import install_error_handlers
from servebench.serving.gate import BodyLimit, ContractGate, is_json

VECTORS = json.loads((Path(__file__).parent / "vectors" / "contract.json").read_text())
CHUNK = 1 << 16
JSON = "application/json"


class Exchange:
    """One request through an ASGI app: the client's body in chunks, and what the app read and
    sent. After the chunks the client has sent its whole body (`then="end"`), or goes away
    (`"disconnect"`), or sends nothing more (`"stall"`)."""

    def __init__(self, chunks: list[bytes], then: str = "end") -> None:
        self.chunks = list(chunks)
        self.then = then
        self.read = 0
        self.sent: list[Message] = []

    async def receive(self) -> Message:
        if self.chunks:
            chunk = self.chunks.pop(0)
            self.read += len(chunk)
            return {"type": "http.request", "body": chunk, "more_body": bool(self.chunks) or self.then != "end"}
        if self.then == "stall":
            await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int:
        return int(self.sent[0]["status"])

    @property
    def headers(self) -> dict[str, str]:
        return {k.decode(): v.decode() for k, v in self.sent[0]["headers"]}

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent[1:])


def run(
    app: ASGIApp,
    chunks: list[bytes],
    content_type: str | None = JSON,
    method: str = "POST",
    path: str = "/predict/pytorch_onnx",
    then: str = "end",
) -> Exchange:
    exchange = Exchange(chunks, then)
    headers = [(b"content-type", content_type.encode())] if content_type is not None else []
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
    }
    asyncio.run(app(scope, exchange.receive, exchange.send))
    return exchange


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    """The framework behind the gate: reads the whole body and sends it back."""
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def fastapi_app() -> ASGIApp:
    """A FastAPI route that reads the body, behind BodyLimit, as servers/fastapi has it."""
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/predict/{model}")
    async def predict(model: str, request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    app.add_middleware(BodyLimit)
    return app


def split(size: int) -> list[bytes]:
    return [b"a" * min(CHUNK, size - start) for start in range(0, size, CHUNK)] or [b""]


def assert_error(exchange: Exchange, status: int) -> dict[str, Any]:
    assert exchange.status == status, exchange.body
    assert exchange.headers["content-type"] == JSON
    doc = json.loads(exchange.body)
    assert set(doc) == {"error", "field"} and isinstance(doc["error"], str) and doc["field"] is None
    return doc


# Content-Type → refused with a 415, as the shared vectors have it.
MEDIA_TYPES = {case["content_type"]: case["status"] == [415] for case in VECTORS["requests"]}


@pytest.mark.parametrize("content_type", list(MEDIA_TYPES))
def test_media_types_are_those_of_the_vectors(content_type: str | None) -> None:
    assert is_json(content_type or "") != MEDIA_TYPES[content_type]


@pytest.mark.parametrize(
    ("content_type", "allowed"),
    [
        ("Application/JSON", True),
        ("application/json ; charset=UTF-8", True),
        ("application/problem+json; charset=utf-8", True),
        ("application/json-seq", False),
        ("text/json", False),
        ("json", False),
    ],
)
def test_media_type_edges(content_type: str, allowed: bool) -> None:
    assert is_json(content_type) == allowed


@pytest.mark.parametrize("content_type", [None, "text/plain", "text/x-servebench+json"])
def test_a_body_not_declared_json_is_refused_unread(content_type: str | None) -> None:
    exchange = run(ContractGate(echo), [b"{}"], content_type)
    assert "Content-Type" in assert_error(exchange, 415)["error"]
    assert exchange.read == 0


def test_json_is_read_whole_and_handed_on() -> None:
    body = [b'{"Pclass": 3, ', b'"Sex": "male"', b"}"]
    exchange = run(ContractGate(echo), body, "application/vnd.servebench+json")
    assert exchange.status == 200 and exchange.body == b"".join(body)


def test_only_posts_to_prediction_routes_are_gated() -> None:
    assert run(ContractGate(echo), [b"x"], "text/plain", method="PUT").status == 200
    assert run(ContractGate(echo), [b"x"], "text/plain", path="/health").status == 200
    gate = ContractGate(echo, paths=["/predict/a"])
    assert run(gate, [b"x"], "text/plain", path="/predict/b").status == 200
    assert_error(run(gate, [b"x"], "text/plain", path="/predict/a"), 415)


def test_without_read_body_the_body_is_the_frameworks() -> None:
    gate = ContractGate(echo, read_body=False)
    big = split(MAX_BODY_BYTES + 1)
    exchange = run(gate, big)
    assert exchange.status == 200 and len(exchange.body) == MAX_BODY_BYTES + 1
    assert_error(run(gate, [b"{}"], "text/plain"), 415)
    assert run(gate, [b""]).status == 200


@pytest.mark.parametrize("size", [MAX_BODY_BYTES, MAX_BODY_BYTES - 1])
def test_a_body_within_the_limit_passes(size: int) -> None:
    exchange = run(ContractGate(echo), split(size))
    assert exchange.status == 200 and len(exchange.body) == size
    assert json.loads(run(fastapi_app(), split(size)).body) == {"size": size}


APPS = {"gate": lambda: ContractGate(echo), "fastapi": fastapi_app}


@pytest.mark.parametrize("app", list(APPS))
@pytest.mark.parametrize("size", [MAX_BODY_BYTES + 1, 4 * MAX_BODY_BYTES])
def test_a_body_over_the_limit_is_read_to_its_end_then_refused(app: str, size: int) -> None:
    exchange = run(APPS[app](), split(size))
    assert str(MAX_BODY_BYTES) in assert_error(exchange, 413)["error"]
    assert exchange.read == size


@pytest.mark.parametrize("app", list(APPS))
def test_draining_stops_past_the_drain_limit(app: str) -> None:
    exchange = run(APPS[app](), split(2 * DRAIN_LIMIT))
    assert_error(exchange, 413)
    assert DRAIN_LIMIT < exchange.read <= DRAIN_LIMIT + CHUNK


def test_an_empty_body_is_not_json() -> None:
    assert "empty" in assert_error(run(ContractGate(echo), [b""]), 400)["error"]


def test_a_client_gone_mid_body_gets_no_answer() -> None:
    assert run(ContractGate(echo), [b'{"Pclass": '], then="disconnect").sent == []


def test_a_stalled_body_is_timed_out_and_the_connection_closed() -> None:
    exchange = run(ContractGate(echo, body_timeout=0.05), [b'{"Pclass": '], then="stall")
    assert_error(exchange, 408)
    assert exchange.headers["connection"] == "close"


def test_other_scopes_pass_untouched() -> None:
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    async def nothing() -> Message:
        return {}

    async def drop(message: Message) -> None:
        pass

    for middleware in (ContractGate(app), BodyLimit(app)):
        asyncio.run(middleware({"type": "lifespan"}, nothing, drop))
    assert seen == ["lifespan", "lifespan"]


# The Open Inference Protocol's door: every POST under /v2/, whatever `paths` says.
V2_INFER = "/v2/models/two_inputs/infer"


def assert_v2_error(exchange: Exchange, status: int) -> dict[str, Any]:
    assert exchange.status == status, exchange.body
    assert exchange.headers["content-type"] == JSON
    doc = json.loads(exchange.body)
    assert set(doc) == {"error"} and isinstance(doc["error"], str)
    return doc


@pytest.mark.parametrize("content_type", [None, JSON, "application/json; charset=utf-8"])
@pytest.mark.parametrize("paths", [None, ["/predict/a"]])
def test_v2_takes_json_or_no_content_type(content_type: str | None, paths: list[str] | None) -> None:
    exchange = run(ContractGate(echo, paths=paths), [b"{}"], content_type, path=V2_INFER)
    assert exchange.status == 200 and exchange.body == b"{}"


@pytest.mark.parametrize("content_type", ["text/plain", "application/vnd.servebench+json"])
def test_v2_refuses_another_content_type_in_its_own_body(content_type: str) -> None:
    exchange = run(ContractGate(echo, read_body=False), [b"{}"], content_type, path=V2_INFER)
    assert "Content-Type" in assert_v2_error(exchange, 415)["error"]
    assert exchange.read == 0


def test_v2_bodies_have_the_same_limit() -> None:
    exchange = run(ContractGate(echo), split(MAX_BODY_BYTES + 1), path=V2_INFER)
    assert str(MAX_BODY_BYTES) in assert_v2_error(exchange, 413)["error"]
    assert exchange.read == MAX_BODY_BYTES + 1


def test_v2_gets_are_not_gated() -> None:
    assert run(ContractGate(echo), [b""], "text/plain", method="GET", path="/v2/health/live").status == 200
