"""BentoML's and Starlette's error answers in the contract's shape, as one pure ASGI middleware
added with `Service.add_asgi_middleware` (BentoML has no exception-handler hook of its own).

BentoML answers a body that fails validation with `400 {"error": "1 validation error for ...",
"detail": [pydantic errors]}`, which becomes the contract's 422 naming the field (or 400 for a body
that is not JSON); Starlette's plain-text 404 and 405 (the Allow header kept) become JSON.
Successful answers pass through untouched. What the request must be before BentoML reads it (its
media type and size) is the shared `ContractGate`'s.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from servebench.serving.errors import error_response
from servebench.serving.schema import validation_failure


def contract_error(status: int, body: bytes) -> tuple[int, str, str | None]:
    """Status, message and field of an error answer from BentoML or Starlette."""
    try:
        doc: Any = json.loads(body)
    except ValueError:
        return status, body.decode(errors="replace").strip() or "error", None
    if isinstance(doc, list) and doc and isinstance(doc[0], dict):
        doc = doc[0]  # a BentoMLException's 4xx comes as a one-element list
    if not isinstance(doc, dict):
        return status, "error", None
    if status == 400 and isinstance(doc.get("detail"), list):
        return validation_failure(doc["detail"])  # BentoML's answer to a pydantic ValidationError
    message = doc.get("error", doc.get("detail", "error"))
    return status, str(message), doc.get("field") if isinstance(doc.get("field"), str) else None


class ContractErrors:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.app(scope, receive, self._reshape_errors(send))

    @staticmethod
    def _reshape_errors(send: Send) -> Send:
        start: Message | None = None
        chunks: list[bytes] = []

        async def reshaping_send(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                if message["status"] < 400:
                    await send(message)
                else:
                    start = message
                return
            if start is None or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            answer = error_response(*contract_error(start["status"], b"".join(chunks)))
            # The framework's own headers stay (the Allow of a 405); the body is the contract's.
            headers = MutableHeaders(raw=list(start.get("headers", [])))
            headers["content-type"] = answer.headers["content-type"]
            headers["content-length"] = str(len(answer.body))
            await send({**start, "status": answer.status_code, "headers": headers.raw})
            await send({"type": "http.response.body", "body": answer.body, "more_body": False})

        return reshaping_send
