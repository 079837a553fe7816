"""The contract's edges that BentoML leaves to the service, as one pure ASGI middleware added with
`Service.add_asgi_middleware` (BentoML has no exception-handler hook of its own):

- requests to `POST /predict/...`: a JSON Content-Type (415), a body of at most 1 MiB read whole
  before BentoML sees it (413, declared or chunked), not empty (400), and not stalled (408).
  BentoML picks its deserialiser by Content-Type and falls back to JSON for any other type, reads
  bodies without a bound, and answers a client that stalls or goes away mid-body with a 504 or a
  500 and a traceback;
- error answers in the contract's shape `{"error": ..., "field": ...}`: BentoML answers a body
  that fails validation with `400 {"error": "1 validation error for ...", "detail": [pydantic
  errors]}`, which becomes the contract's 422 naming the field (or 400 for a body that is not JSON),
  and Starlette's plain-text 404 and 405 (the Allow header kept) become JSON.

Successful answers pass through untouched.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from servebench.contract import DRAIN_LIMIT, MAX_BODY_BYTES
from servebench.serving.errors import JSON_TYPE, error_response, is_json
from servebench.serving.schema import validation_failure

PREDICT_PREFIX = "/predict/"
BODY_TIMEOUT_S = 10.0


class BodyTooLarge(Exception):
    pass


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


class ContractGate:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] == "POST" and scope["path"].startswith(PREDICT_PREFIX):
            content_type = ""
            for name, value in scope["headers"]:
                if name == b"content-type":
                    content_type = value.decode("latin-1")
            if not is_json(content_type):
                await error_response(415, "Content-Type must be application/json")(scope, receive, send)
                return
            try:
                async with asyncio.timeout(BODY_TIMEOUT_S):
                    body = await self._read_body(receive)
            except TimeoutError:
                answer = error_response(408, "request body timed out", headers={"Connection": "close"})
                await answer(scope, receive, send)
                return
            except BodyTooLarge:
                await error_response(413, f"body exceeds {MAX_BODY_BYTES} bytes")(scope, receive, send)
                return
            if body is None:  # the client went away
                return
            if not body:
                await error_response(400, "malformed JSON: the body is empty")(scope, receive, send)
                return
            receive = self._replay(body, receive)
        await self.app(scope, receive, self._reshape_errors(send))

    @staticmethod
    async def _read_body(receive: Receive) -> bytes | None:
        """The whole body, or None if the client went away. Past MAX_BODY_BYTES the rest is read
        (up to DRAIN_LIMIT) and dropped before BodyTooLarge, so that the client, still sending,
        reads the 413 rather than a reset."""
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            more = message.get("more_body", False)
            if size <= MAX_BODY_BYTES:
                chunks.append(chunk)
            elif not more or size > DRAIN_LIMIT:
                raise BodyTooLarge
        return b"".join(chunks)

    @staticmethod
    def _replay(body: bytes, receive: Receive) -> Receive:
        pending = True

        async def replay() -> Message:
            nonlocal pending
            if pending:
                pending = False
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return replay

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
            status, text, field = contract_error(start["status"], b"".join(chunks))
            body = json.dumps({"error": text, "field": field}).encode()
            headers = MutableHeaders(raw=list(start.get("headers", [])))
            headers["content-type"] = JSON_TYPE
            headers["content-length"] = str(len(body))
            await send({**start, "status": status, "headers": headers.raw})
            await send({"type": "http.response.body", "body": body, "more_body": False})

        return reshaping_send
