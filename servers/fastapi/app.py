"""FastAPI: pydantic models in the handler's signature, FastAPI's own body parsing and validation,
a response model serialised by pydantic, and the shared inference layer.

The handlers are `async def` and run inference inline on the event loop: a prediction takes tens
of microseconds, less than the hop to the thread pool that a plain `def` handler pays.
"""

from typing import Annotated, Any

from fastapi import Depends, FastAPI, Path, Request
from starlette.exceptions import HTTPException

from servebench import registry
from servebench.serving.errors import install_error_handlers
from servebench.serving.gate import BodyLimit, require_json
from servebench.serving.inference import Inference
from servebench.serving.launch_env import server_id
from servebench.serving.middleware import ServerTiming
from servebench.serving.schema import (
    RESPONSES,
    Batch,
    BatchPrediction,
    Health,
    Passenger,
    Prediction,
    PredictRequest,
    predictions,
)

SERVER_ID = "fastapi"


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

    install_error_handlers(app)

    async def served_json(request: Request, model: Annotated[str, Path(json_schema_extra={"enum": served})]) -> str:
        """The model, served here, of a JSON request: checked before FastAPI validates the body."""
        if model not in served:
            raise HTTPException(404, f"unknown model '{model}'")
        require_json(request.headers)
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
