"""Flask, served by gunicorn (see gunicorn_conf.py) or, as the `flask-dev` variant, by Flask's
own development server, which is what many first write-ups measure."""

from __future__ import annotations

import time

import orjson
from flask import Flask, Response, request
from werkzeug import serving
from werkzeug.exceptions import HTTPException

from servebench.contract import MAX_BODY_BYTES
from servebench.serving.inference import Inference, error_body, server_timing

JSON = "application/json"
CHUNK = 1 << 16
DRAIN_LIMIT = 16 * MAX_BODY_BYTES
DEV_BACKLOG = 2048


def create_app(inference: Inference | None = None, framework: str = "flask") -> Flask:
    engine = inference or Inference.from_env()
    app = Flask(__name__)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        message = "body exceeds 1048576 bytes" if status == 413 else (exc.description or exc.name)
        response = Response(error_body(status, message.split("\n")[0]), status, mimetype=JSON)
        for name, value in exc.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value  # the Allow of a 405, for instance
        return response

    @app.get("/health")
    def health() -> Response:
        start = time.perf_counter()
        response = Response(
            orjson.dumps({"status": "ok", "framework": framework, "models": engine.models}), mimetype=JSON
        )
        response.headers["Server-Timing"] = server_timing((time.perf_counter() - start) * 1000.0)
        return response

    @app.post("/predict/<model>")
    def predict(model: str) -> Response:
        body = _read_limited()
        if body is None:
            return Response(error_body(413, f"body exceeds {MAX_BODY_BYTES} bytes"), 413, mimetype=JSON)
        result = engine.handle(model, body, request.headers.get("Content-Type"))
        response = Response(result.body, result.status, mimetype=JSON)
        if result.server_ms is not None:
            response.headers["Server-Timing"] = server_timing(result.server_ms)
        return response

    return app


def _read_limited() -> bytes | None:
    """The body, or None past the limit. An oversized body is still read (up to DRAIN_LIMIT) and
    dropped: closing a socket with unread data resets it, and the client would never see the 413."""
    declared = request.content_length
    if declared is not None and declared > DRAIN_LIMIT:
        return None
    stream, chunks, size = request.stream, [], 0
    while chunk := stream.read(CHUNK):
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            while size <= DRAIN_LIMIT and (chunk := stream.read(CHUNK)):
                size += len(chunk)
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def create_dev_app() -> Flask:
    """The `flask-dev` variant: the same app, named so that /health tells them apart.

    `flask run` loads the app before it creates its server, so this is the place to raise the
    server's listen backlog from Werkzeug's 128: with more clients connecting at once than that,
    the kernel drops handshakes from a full accept queue and clients see connections reset.
    uvicorn and gunicorn run with 2048 here; the development server gets the same.
    """
    serving.BaseWSGIServer.request_queue_size = DEV_BACKLOG
    return create_app(framework="flask-dev")
