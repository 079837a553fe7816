"""What every Python app wraps itself in, so that a figure means the same on every stack:
`ServerTiming` (ASGI) and `WSGIServerTiming` (WSGI) add `Server-Timing: app;dur=<ms>` to every
response, measured from the request entering the application to its response headers leaving it
(the Rust servers do the same in one tower layer). The contract's checks on a request's media
type and body size are in `gate.py`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send


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
