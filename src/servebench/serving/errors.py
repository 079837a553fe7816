"""The contract's error answers for the ASGI apps (FastAPI, and the frameworks built on it):
the body `{"error": message, "field": name or null}` with its status, and FastAPI's two exception
handlers that put Starlette's and pydantic's errors in that shape. Flask and the Rust servers build
the same body with their own tools."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from servebench.serving.schema import validation_failure


def error_response(
    status: int, message: str, field: str | None = None, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": message, "field": field}, status, headers=headers)


def http_error_response(exc: HTTPException) -> JSONResponse:
    # Keeps the exception's headers, such as the Allow of a 405.
    return error_response(exc.status_code, str(exc.detail), headers=exc.headers)


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    return http_error_response(exc)


async def _invalid(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    status, message, field = validation_failure(exc.errors())
    return error_response(status, message, field)


def install_error_handlers(app: FastAPI) -> None:
    """Starlette's HTTP errors (404, 405, 413, 415...) and FastAPI's validation errors (422 naming
    the field, 400 for a body that is not JSON) in the contract's shape."""
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid)
