"""FastAPI, served by uvicorn (uvloop + httptools, one worker per core given to the server).

The handler is `async def` and runs inference inline on the event loop: a prediction takes
tens of microseconds, far less than a hop to the thread pool that a plain `def` handler costs.
The body is parsed by the shared contract code, not by FastAPI's validation, so every server
answers every request the same way; the OpenAPI document still describes the contract fully.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from fastapi import FastAPI, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from servebench.contract import MAX_BODY_BYTES, MODELS
from servebench.serving.inference import Inference, error_body, server_timing
from servebench.serving.schema import Health, component_schemas, predict_openapi_extra, restrict_models

FRAMEWORK = "fastapi"
JSON = "application/json"
DRAIN_LIMIT = 16 * MAX_BODY_BYTES


async def _read_limited(request: Request) -> bytes | None:
    """The body, or None past the limit. An oversized body is still read (up to DRAIN_LIMIT) and
    dropped: closing a socket with unread data resets it, and the client would never see the 413."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > DRAIN_LIMIT:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > DRAIN_LIMIT:
            break
        if size <= MAX_BODY_BYTES:
            chunks.append(chunk)
    return b"".join(chunks) if size <= MAX_BODY_BYTES else None


def create_app(inference: Inference | None = None, load_models: bool = True) -> FastAPI:
    """The app; with `load_models=False` it only serves to produce the OpenAPI document."""
    engine = inference or (Inference.from_env() if load_models else None)
    app = FastAPI(
        title="servebench",
        version="1.0",
        description="Titanic survival predictions; the contract of docs/api.md.",
        docs_url=None,
        redoc_url=None,
    )

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> Response:
        # Keeps Starlette's headers, such as the Allow of a 405.
        return Response(
            error_body(exc.status_code, str(exc.detail)), exc.status_code, headers=exc.headers, media_type=JSON
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> Response:
        return Response(error_body(422, "invalid request"), 422, media_type=JSON)

    @app.get("/health", response_model=Health)
    async def health() -> Response:
        start = time.perf_counter()
        assert engine is not None
        body = orjson.dumps({"status": "ok", "framework": FRAMEWORK, "models": engine.models})
        timing = server_timing((time.perf_counter() - start) * 1000.0)
        return Response(body, headers={"Server-Timing": timing}, media_type=JSON)

    @app.post(
        "/predict/{model}",
        openapi_extra=predict_openapi_extra(),
        response_class=JSONResponse,
        responses={},
    )
    async def predict(
        request: Request,
        model: str = Path(json_schema_extra={"enum": list(MODELS)}),
    ) -> Response:
        body = await _read_limited(request)
        if body is None:
            return Response(error_body(413, f"body exceeds {MAX_BODY_BYTES} bytes"), 413, media_type=JSON)
        assert engine is not None
        result = engine.handle(model, body, request.headers.get("content-type"))
        headers = {"Server-Timing": server_timing(result.server_ms)} if result.server_ms is not None else None
        return Response(result.body, result.status, headers=headers, media_type=JSON)

    openapi = app.openapi

    def contract_openapi() -> dict[str, Any]:
        doc = openapi()
        doc.setdefault("components", {}).setdefault("schemas", {}).update(component_schemas())
        doc["paths"]["/predict/{model}"]["post"]["responses"].pop("422", None)
        doc["paths"]["/predict/{model}"]["post"]["responses"].update(predict_openapi_extra()["responses"])
        return doc

    app.openapi = contract_openapi  # type: ignore[method-assign]
    return app


def openapi_document(models: list[str] | None = None) -> dict[str, Any]:
    """The contract's OpenAPI document, for a server that serves `models` (default: all four)."""
    return restrict_models(create_app(load_models=False).openapi(), models or list(MODELS))
