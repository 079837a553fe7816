"""FastAPI: pydantic models in the handler's signature, FastAPI's own body parsing and validation,
a response model serialised by pydantic, and the shared inference layer.

The handlers are `async def` and run inference inline on the event loop: a prediction takes tens
of microseconds, less than the hop to the thread pool that a plain `def` handler pays.
"""

from typing import Annotated, Any

from fastapi import Depends, FastAPI, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from servebench import registry
from servebench.serving.inference import Inference, server_id
from servebench.serving.middleware import BodyLimit, ServerTiming
from servebench.serving.schema import (
    RESPONSES,
    Batch,
    BatchPrediction,
    Health,
    Passenger,
    Prediction,
    PredictRequest,
    predictions,
    validation_failure,
)

SERVER_ID = "fastapi"
JSON_TYPES = ("application/json",)


def error(status: int, message: str, field: str | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "field": field}, status, headers=headers)


def create_app(inference: Inference | None = None, load_models: bool = True) -> FastAPI:
    """The app; with `load_models=False` it only serves to produce the OpenAPI document."""
    engine = inference or (Inference.from_env() if load_models else None)
    served = engine.models if engine else [m.name for m in registry.models()]
    identity = server_id(SERVER_ID)
    app = FastAPI(
        title="servebench",
        version="2.0",
        description="Titanic survival predictions; the contract of docs/api.md.",
        docs_url=None,
        redoc_url=None,
    )

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        # Keeps Starlette's headers, such as the Allow of a 405.
        return error(exc.status_code, str(exc.detail), headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        status, message, field = validation_failure(exc.errors())
        return error(status, message, field)

    async def served_json(request: Request, model: Annotated[str, Path(json_schema_extra={"enum": served})]) -> str:
        """The model, served here, of a JSON request: checked before FastAPI validates the body."""
        if model not in served:
            raise HTTPException(404, f"unknown model '{model}'")
        media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media_type not in JSON_TYPES and not media_type.endswith("+json"):
            raise HTTPException(415, "Content-Type must be application/json")
        return model

    @app.get("/health")
    async def health() -> Health:
        return Health(status="ok", framework=identity, models=served)

    @app.post("/predict/{model}", responses=RESPONSES)
    async def predict(
        model: Annotated[str, Depends(served_json)], body: PredictRequest
    ) -> Prediction | BatchPrediction:
        assert engine is not None
        if isinstance(body, Batch):
            return predictions(engine.predict(model, body.instances), batch=True)
        assert isinstance(body, Passenger)
        return predictions(engine.predict(model, [body]), batch=False)

    # Outermost last: the timing covers everything, the 413 included. FastAPI's own max_body_size
    # answers in plain text; BodyLimit's 413 goes through the JSON error handler above.
    app.add_middleware(BodyLimit)
    app.add_middleware(ServerTiming)
    return app


def openapi_document(models: list[str] | None = None) -> dict[str, Any]:
    """The contract's OpenAPI document, as published by this app, for a server that serves
    `models` (default: every model)."""
    document = create_app(load_models=False).openapi()
    if models is not None:
        for parameter in document["paths"]["/predict/{model}"]["post"]["parameters"]:
            if parameter["name"] == "model":
                parameter["schema"]["enum"] = sorted(models)
    return document
