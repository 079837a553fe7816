"""The contract's door to the prediction routes of the ASGI apps (docs/api.md), written once:

- the body must be declared JSON: `application/json` or `application/*+json`, parameters such as
  charset allowed; anything else, or no Content-Type, is a 415;
- the body may be at most 1 MiB, declared or chunked; past that it is a 413, answered once the
  rest is read (up to DRAIN_LIMIT) and dropped: closing a socket with unread data resets it, and
  the client, still sending, would never read the 413;
- each refusal is a Starlette `HTTPException`, answered in the contract's error body
  (`errors.http_error_response`), by the app's exception handler or by the gate itself.

The Open Inference Protocol's routes (a POST under /v2/) have the protocol's door instead: no
Content-Type, or application/json (`require_v2_json`, a 415 otherwise); the same 1 MiB; refusals
in the protocol's body, `{"error": message}`.

Each framework takes it its own way. FastAPI checks where FastAPI checks things: `require_json` in
the route's dependency, and `BodyLimit`, whose 413 is raised from `receive` inside the route so
that the app's exception handler renders it. `ContractGate` is the same door as one pure ASGI
middleware, for frameworks whose exception handlers do not come first or do not exist (LitServe's
and BentoML's middleware hooks).
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from servebench.contract import DRAIN_LIMIT, MAX_BODY_BYTES
from servebench.serving.errors import http_error_response, v2_http_error_response
from servebench.serving.v2 import UNSUPPORTED_MEDIA_TYPE, V2_PREFIX, accepts_media_type

JSON_TYPE = "application/json"
PREDICT_PREFIX = "/predict/"


def is_json(content_type: str) -> bool:
    """`application/json` or `application/*+json`, parameters such as charset allowed."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == JSON_TYPE or (media_type.startswith("application/") and media_type.endswith("+json"))


def require_json(headers: Headers) -> None:
    """The 415 for a body not declared JSON."""
    if not is_json(headers.get("content-type", "")):
        raise HTTPException(415, "Content-Type must be application/json")


def require_v2_json(headers: Headers) -> None:
    """The protocol's 415: a body declared anything but JSON (no Content-Type is fine)."""
    if not accepts_media_type(headers.get("content-type")):
        raise HTTPException(415, UNSUPPORTED_MEDIA_TYPE)


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"body exceeds {limit} bytes")


def limited(receive: Receive, limit: int = MAX_BODY_BYTES) -> Receive:
    """`receive` for a body of at most `limit` bytes: the message that passes it drains the rest
    of the body (up to DRAIN_LIMIT) and raises BodyTooLarge instead of returning."""
    received = 0

    async def limited_receive() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                more = message.get("more_body", False)
                while more and received <= DRAIN_LIMIT:
                    message = await receive()
                    received += len(message.get("body", b""))
                    more = message.get("more_body", False)
                raise BodyTooLarge(limit)
        return message

    return limited_receive


async def read_body(receive: Receive, limit: int = MAX_BODY_BYTES) -> bytes | None:
    """The whole body, or None if the client went away first; BodyTooLarge past `limit`."""
    receive = limited(receive, limit)
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def replay(body: bytes, receive: Receive) -> Receive:
    """`receive` that hands the app a body already read, then whatever comes next (a disconnect)."""
    pending = True

    async def replayed() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


class BodyLimit:
    """The 413 for an app whose route reads the body and whose exception handler answers it
    (FastAPI): raised from `receive`, so it reaches the handler like any error of the route."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.app(scope, limited(receive, self.limit), send)


class ContractGate:
    """Pure ASGI: a POST to a prediction route is answered here, before the framework sees it,
    when it breaks the door's rules: 415 unless the body is declared JSON (on a /v2/ route:
    unless it is declared application/json or not declared at all); with `read_body`, the
    body is read whole first (413 past the limit, drained; 400 when empty; 408, closing the
    connection, when it stalls for `body_timeout` seconds) and replayed to the app, and a client
    that goes away mid-body gets no answer. Every other request passes untouched.

    `paths` are the prediction routes where the framework has one per model (LitServe); by
    default every path under /predict/ is one (a single route with the model as a parameter).
    Every POST under /v2/ is gated too, whatever `paths` says, and answered in the protocol's
    error body.
    Without `read_body` the body is the framework's own to read and bound."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        paths: Collection[str] | None = None,
        read_body: bool = True,
        body_timeout: float | None = None,
    ) -> None:
        self.app = app
        self.paths = frozenset(paths) if paths is not None else None
        self.read_body = read_body
        self.body_timeout = body_timeout

    def gates(self, scope: Scope) -> bool:
        if scope["type"] != "http" or scope["method"] != "POST":
            return False
        path: str = scope["path"]
        if path.startswith(V2_PREFIX):
            return True
        return path in self.paths if self.paths is not None else path.startswith(PREDICT_PREFIX)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.gates(scope):
            await self.app(scope, receive, send)
            return
        v2 = scope["path"].startswith(V2_PREFIX)
        try:
            (require_v2_json if v2 else require_json)(Headers(scope=scope))
            if self.read_body:
                body = await self._whole_body(receive)
                if body is None:
                    return
                receive = replay(body, receive)
        except HTTPException as exc:
            await (v2_http_error_response if v2 else http_error_response)(exc)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _whole_body(self, receive: Receive) -> bytes | None:
        try:
            async with asyncio.timeout(self.body_timeout):
                body = await read_body(receive)
        except TimeoutError:
            raise HTTPException(408, "request body timed out", headers={"Connection": "close"}) from None
        if body == b"":
            raise HTTPException(400, "malformed JSON: the body is empty")
        return body
