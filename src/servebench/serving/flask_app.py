"""Flask, served by gunicorn (see gunicorn_conf.py) or, as the `flask-dev` variant, by Flask's
own development server, which is what many first write-ups measure."""

from __future__ import annotations

import orjson
from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from servebench.contract import MAX_BODY_BYTES
from servebench.serving.inference import Inference, error_body, server_timing

JSON = "application/json"


def create_app(inference: Inference | None = None, framework: str = "flask") -> Flask:
    engine = inference or Inference.from_env()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        message = "body exceeds 1048576 bytes" if status == 413 else (exc.description or exc.name)
        return Response(error_body(status, message.split("\n")[0]), status, mimetype=JSON)

    @app.get("/health")
    def health() -> Response:
        doc = {"status": "ok", "framework": framework, "models": engine.models}
        return Response(orjson.dumps(doc), mimetype=JSON)

    @app.post("/predict/<model>")
    def predict(model: str) -> Response:
        body = request.get_data(cache=False)
        result = engine.handle(model, body, request.headers.get("Content-Type"))
        response = Response(result.body, result.status, mimetype=JSON)
        if result.server_ms is not None:
            response.headers["Server-Timing"] = server_timing(result.server_ms)
        return response

    return app


def create_dev_app() -> Flask:
    """The `flask-dev` variant: the same app, named so that /health tells them apart."""
    return create_app(framework="flask-dev")
