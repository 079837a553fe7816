"""BentoML's and Starlette's error answers in the contract's shape, as one pure ASGI middleware
added with `Service.add_asgi_middleware` (BentoML has no exception-handler hook of its own).

BentoML answers a body that fails validation with `400 {"error": "1 validation error for ...",
"detail": [pydantic errors]}`, which becomes the contract's 422 naming the field (or 400 for a body
that is not JSON); Starlette's plain-text 404 and 405 (the Allow header kept) become JSON.
Successful answers pass through untouched. What the request must be before BentoML reads it (its
media type and size) is the shared `ContractGate`'s.

On the Open Inference Protocol's routes (/v2...) the answer is the protocol's instead: its body
`{"error": message}`, and a body that fails validation its 400 naming the field
(`v2.request_error`).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi.responses import JSONResponse
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from servebench.serving import v2
from servebench.serving.errors import error_response, v2_error_response
from servebench.serving.schema import validation_failure


def _error_document(body: bytes) -> dict[str, Any] | str:
    """An error answer's JSON object, or its text when it has none."""
    try:
        doc: Any = json.loads(body)
    except ValueError:
        return body.decode(errors="replace").strip() or "error"
    if isinstance(doc, list) and doc and isinstance(doc[0], dict):
        doc = doc[0]  # a BentoMLException's 4xx comes as a one-element list
    return doc if isinstance(doc, dict) else "error"


def contract_error(status: int, body: bytes) -> tuple[int, str, str | None]:
    """Status, message and field of an error answer from BentoML or Starlette."""
    doc = _error_document(body)
    if isinstance(doc, str):
        return status, doc, None
    if status == 400 and isinstance(doc.get("detail"), list):
        return validation_failure(doc["detail"])  # BentoML's answer to a pydantic ValidationError
    message = doc.get("error", doc.get("detail", "error"))
    return status, str(message), doc.get("field") if isinstance(doc.get("field"), str) else None


def protocol_error(status: int, body: bytes) -> JSONResponse:
    """An error answer on a /v2 route in the protocol's shape: a body that fails validation is
    the protocol's 400 naming the field; anything else keeps its status and message."""
    doc = _error_document(body)
    if isinstance(doc, str):
        return v2_error_response(v2.V2Error(status, doc))
    if status == 400 and isinstance(doc.get("detail"), list):
        return v2_error_response(v2.request_error(doc["detail"]))
    return v2_error_response(v2.V2Error(status, str(doc.get("error", doc.get("detail", "error")))))


class ContractErrors:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.app(scope, receive, self._reshape_errors(send, v2.is_v2_path(scope["path"])))

    @staticmethod
    def _reshape_errors(send: Send, protocol: bool) -> Send:
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
            body = b"".join(chunks)
            answer = (
                protocol_error(start["status"], body)
                if protocol
                else error_response(*contract_error(start["status"], body))
            )
            # The framework's own headers stay (the Allow of a 405); the body is the contract's.
            headers = MutableHeaders(raw=list(start.get("headers", [])))
            headers["content-type"] = answer.headers["content-type"]
            headers["content-length"] = str(len(answer.body))
            await send({**start, "status": answer.status_code, "headers": headers.raw})
            await send({"type": "http.response.body", "body": answer.body, "more_body": False})

        return reshaping_send
