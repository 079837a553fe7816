"""The contract's error answers for the ASGI apps (FastAPI, and the frameworks built on it):
the body `{"error": message, "field": name or null}` with its status, and FastAPI's exception
handlers that put Starlette's and pydantic's errors in that shape. On the Open Inference
Protocol's routes (/v2...) the same handlers answer in the protocol's shape, `{"error": message}`,
with a body that fails validation as its 400 (`v2.request_error`), and a `V2Error` as it says.
Flask and the Rust servers build the same bodies with their own tools."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from servebench.serving.schema import validation_failure
from servebench.serving.v2 import V2Error, is_v2_path, request_error


def error_response(
    status: int, message: str, field: str | None = None, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": message, "field": field}, status, headers=headers)


def http_error_response(exc: HTTPException) -> JSONResponse:
    # Keeps the exception's headers, such as the Allow of a 405.
    return error_response(exc.status_code, str(exc.detail), headers=exc.headers)


def v2_error_response(exc: V2Error) -> JSONResponse:
    return JSONResponse(exc.body(), exc.status)


def v2_http_error_response(exc: HTTPException) -> JSONResponse:
    """A Starlette HTTP error (404, 405, 413, 415...) on a /v2 route, in the protocol's shape."""
    return JSONResponse(V2Error(exc.status_code, str(exc.detail)).body(), exc.status_code, headers=exc.headers)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    return v2_http_error_response(exc) if is_v2_path(request.url.path) else http_error_response(exc)


async def _invalid(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    if is_v2_path(request.url.path):
        return v2_error_response(request_error(exc.errors()))
    status, message, field = validation_failure(exc.errors())
    return error_response(status, message, field)


async def _v2_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, V2Error)
    return v2_error_response(exc)


def install_error_handlers(app: FastAPI) -> None:
    """Starlette's HTTP errors (404, 405, 413, 415...) and FastAPI's validation errors (422 naming
    the field, 400 for a body that is not JSON) in the contract's shape; on /v2 routes, in the
    protocol's, where a body FastAPI refuses is a 400; and the protocol's own V2Error."""
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(V2Error, _v2_error)
