"""What every Python app wraps itself in, so that a figure means the same on every stack:

- `ServerTiming` (ASGI) and `WSGIServerTiming` (WSGI) add `Server-Timing: app;dur=<ms>` to every
  response, measured from the request entering the application to its response headers leaving
  it (the Rust servers do the same in one tower layer);
- `BodyLimit` (ASGI) answers 413 past 1 MiB, whether the size is declared or the body is chunked.
  Flask's own `MAX_CONTENT_LENGTH` does that job under WSGI.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from servebench.contract import DRAIN_LIMIT, MAX_BODY_BYTES


def server_timing(started: float) -> str:
    return f"app;dur={(time.perf_counter() - started) * 1000.0:.3f}"


class ServerTiming:
    """Pure ASGI: no response buffering, no task hop, unlike BaseHTTPMiddleware."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"server-timing", server_timing(started).encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, timed_send)


class BodyLimit:
    """Bodies over MAX_BODY_BYTES end in HTTPException(413), raised from `receive` so that the
    framework's own exception handler renders it. The rest of an oversized body is read (up to
    DRAIN_LIMIT) and dropped first: closing a socket with unread data resets it, and the client
    would never see the 413."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    more = message.get("more_body", False)
                    while more and received <= DRAIN_LIMIT:
                        message = await receive()
                        received += len(message.get("body", b""))
                        more = message.get("more_body", False)
                    raise HTTPException(413, f"body exceeds {self.limit} bytes")
            return message

        await self.app(scope, limited_receive, send)


StartResponse = Callable[..., Any]


class WSGIServerTiming:
    def __init__(self, app: Callable[[dict[str, Any], StartResponse], Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()

        def timed_start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            headers.append(("Server-Timing", server_timing(started)))
            return start_response(status, headers, exc_info)

        return self.app(environ, timed_start_response)
