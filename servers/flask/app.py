"""Flask: `request.get_json()`, validation with the shared pydantic models, Flask's own limits and
error handling, and the shared inference layer. Served by gunicorn (gunicorn.conf.py beside
this file), or by Flask's development server as the `flask-dev` variant.

Beside the record API, the Open Inference Protocol (/v2, docs/api.md): views that hand the body
to the shared protocol (servebench.serving.v2), whose refusals (`V2Error`) and Flask's own on
/v2 routes are answered by error handlers as `{"error": message}`."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from flask import Flask, Response, abort, request
from pydantic import ValidationError
from werkzeug import serving
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from servebench.contract import DRAIN_LIMIT, MAX_BODY_BYTES
from servebench.serving import v2
from servebench.serving.inference import Inference
from servebench.serving.launch_env import server_id
from servebench.serving.middleware import WSGIServerTiming
from servebench.serving.schema import Batch, ErrorBody, Health, predictions, validate, validation_failure

SERVER_ID = "flask"
JSON = "application/json"
CHUNK = 1 << 16
DEV_BACKLOG = 2048


def error(status: int, message: str, field: str | None = None) -> Response:
    return Response(ErrorBody(error=message, field=field).model_dump_json(), status, mimetype=JSON)


def _drain() -> None:
    """Read and drop what is left of an oversized body (up to DRAIN_LIMIT): closing a socket with
    unread data resets it, and the client, still sending, would never read the 413."""
    stream = request.environ["wsgi.input"]
    # Never past the declared length: on a kept-alive connection that would wait for bytes
    # that are not coming.
    left = min(request.content_length or DRAIN_LIMIT, DRAIN_LIMIT)
    # A client that went away (reset, timed out) leaves nobody to answer.
    with contextlib.suppress(OSError):
        while left > 0 and (chunk := stream.read(min(CHUNK, left))):
            left -= len(chunk)


def create_app(inference: Inference | None = None, protocol: v2.V2Models | None = None) -> Flask:
    engine = inference or Inference.from_env()
    models = protocol or v2.V2Models.from_env()
    identity = server_id(SERVER_ID)
    app = Flask(__name__)
    # One byte over the limit, so that a body of unknown length (chunked) that is too long is seen
    # as such: Werkzeug stops reading at MAX_CONTENT_LENGTH without an error.
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES + 1
    app.wsgi_app = WSGIServerTiming(app.wsgi_app)  # type: ignore[method-assign]

    @app.errorhandler(v2.V2Error)
    def v2_error(exc: v2.V2Error) -> Response:
        return Response(json.dumps(exc.body()), exc.status, mimetype=JSON)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        if isinstance(exc, RequestEntityTooLarge):
            _drain()
        message = exc.description or exc.name
        response = v2_error(v2.V2Error(status, message)) if v2.is_v2_path(request.path) else error(status, message)
        for name, value in exc.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value  # the Allow of a 405, for instance
        return response

    @app.get("/health")
    def health() -> Response:
        body = Health(status="ok", framework=identity, models=engine.models)
        return Response(body.model_dump_json(), mimetype=JSON)

    @app.post("/predict/<model>")
    def predict(model: str) -> Response:
        if model not in engine.predictors:
            abort(404, f"unknown model '{model}'")
        if len(request.get_data(cache=True)) > MAX_BODY_BYTES:
            # Read whole already: nothing left to drain.
            return error(413, f"body exceeds {MAX_BODY_BYTES} bytes")
        try:
            doc = request.get_json()
        except RecursionError:
            abort(400, "malformed JSON: nested too deeply")
        try:
            body = validate(doc)
        except ValidationError as exc:
            return error(*validation_failure(exc.errors()))
        passengers = body.instances if isinstance(body, Batch) else [body]
        result = predictions(engine.predict(model, passengers), batch=isinstance(body, Batch))
        return Response(result.model_dump_json(), mimetype=JSON)

    # The Open Inference Protocol.
    @app.get("/v2")
    def v2_server() -> dict[str, Any]:
        return v2.server_metadata(identity)

    @app.get("/v2/health/live")
    def v2_live() -> dict[str, Any]:
        return v2.LIVE

    @app.get("/v2/health/ready")
    def v2_ready() -> dict[str, Any]:
        return v2.READY

    @app.get("/v2/models/<name>")
    def v2_model_metadata(name: str) -> dict[str, Any]:
        return models.metadata(name)

    @app.get("/v2/models/<name>/ready")
    def v2_model_ready(name: str) -> dict[str, Any]:
        return models.ready(name)

    @app.post("/v2/models/<name>/infer")
    def v2_infer(name: str) -> dict[str, Any]:
        models.model(name)
        v2.check_media_type(request.content_type)
        body = request.get_data(cache=True)
        if len(body) > MAX_BODY_BYTES:
            raise v2.V2Error(413, f"body exceeds {MAX_BODY_BYTES} bytes")  # read whole: nothing to drain
        return models.infer(name, body)

    return app


def create_dev_app() -> Flask:
    """The `flask-dev` variant: the same app on Flask's development server.

    `flask run` loads the app before it creates its server, so this is the place to raise the
    server's listen backlog from Werkzeug's 128: with more clients connecting at once than that,
    the kernel drops handshakes from a full accept queue and clients see connections reset.
    uvicorn and gunicorn run with 2048 here; the development server gets the same.
    """
    serving.BaseWSGIServer.request_queue_size = DEV_BACKLOG
    return create_app()
