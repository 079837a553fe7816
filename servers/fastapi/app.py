"""FastAPI: pydantic models in the handler's signature, FastAPI's own body parsing and validation,
a response model serialised by pydantic, and the shared inference layer. Beside the record API,
the Open Inference Protocol (/v2, docs/api.md) the same way, with the shared protocol's models
and checks (servebench.serving.v2).

The handlers are `async def` and run inference inline on the event loop: a prediction takes tens
of microseconds, less than the hop to the thread pool that a plain `def` handler pays.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Path, Request
from starlette.exceptions import HTTPException

from servebench import registry
from servebench.serving import v2
from servebench.serving.errors import install_error_handlers
from servebench.serving.gate import BodyLimit, require_json, require_v2_json
from servebench.serving.inference import Inference
from servebench.serving.launch_env import server_id
from servebench.serving.middleware import ServerTiming
from servebench.serving.schema import (
    RESPONSES,
    SERVER_TIMING,
    Batch,
    BatchPrediction,
    Health,
    Passenger,
    Prediction,
    PredictRequest,
    predictions,
)

SERVER_ID = "fastapi"
V2_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"headers": SERVER_TIMING},
    **{code: {"description": text, "model": v2.ErrorBody} for code, text in v2.ERRORS.items()},
}


def create_app(
    inference: Inference | None = None, load_models: bool = True, protocol: v2.V2Models | None = None
) -> FastAPI:
    """The app; with `load_models=False` it only serves to produce the OpenAPI document."""
    engine = inference or (Inference.from_env() if load_models else None)
    models = protocol or (v2.V2Models.from_env() if load_models else None)
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

    app.include_router(v2_router(models, identity))

    # Outermost last: the timing covers everything, the 413 included. FastAPI's own max_body_size
    # answers in plain text; BodyLimit's 413 goes through the JSON error handler above.
    app.add_middleware(BodyLimit)
    app.add_middleware(ServerTiming)
    return app


def v2_router(models: v2.V2Models | None, identity: str) -> APIRouter:
    """The Open Inference Protocol's routes. Their errors are `{"error": message}`:
    install_error_handlers answers in that shape on /v2 routes, where a body FastAPI refuses is a
    400. The protocol lets a client send no Content-Type, so a body without one is read as JSON
    here (`strict_content_type=False`); one declared as anything else is a 415."""
    router = APIRouter(prefix="/v2", tags=["Open Inference Protocol"], strict_content_type=False)

    async def v2_json(request: Request, name: str) -> str:
        """The model, served here, of a request whose body is JSON or not declared at all:
        checked before FastAPI validates the body."""
        assert models is not None
        models.model(name)
        require_v2_json(request.headers)
        return name

    @router.get("", response_model=v2.ServerMetadata)
    async def v2_server() -> dict[str, Any]:
        return v2.server_metadata(identity)

    @router.get("/health/live", response_model=v2.ServerLive)
    async def v2_live() -> dict[str, Any]:
        return v2.LIVE

    @router.get("/health/ready", response_model=v2.ServerReady)
    async def v2_ready() -> dict[str, Any]:
        return v2.READY

    @router.get("/models/{name}", response_model=v2.ModelMetadata, responses=V2_RESPONSES)
    async def v2_model_metadata(name: str) -> dict[str, Any]:
        assert models is not None
        return models.metadata(name)

    @router.get("/models/{name}/ready", response_model=v2.ModelReady, responses=V2_RESPONSES)
    async def v2_model_ready(name: str) -> dict[str, Any]:
        assert models is not None
        return models.ready(name)

    @router.post(
        "/models/{name}/infer",
        response_model=v2.InferenceResponse,
        response_model_exclude_none=True,
        responses=V2_RESPONSES,
    )
    async def v2_infer(name: Annotated[str, Depends(v2_json)], body: v2.InferenceRequest) -> dict[str, Any]:
        assert models is not None
        return models.infer_request(name, body)

    return router


def openapi_document(models: list[str] | None = None) -> dict[str, Any]:
    """The contract's OpenAPI document, as published by this app, for a server that serves
    `models` (default: every model): the record API's routes. The protocol's (/v2) are left out:
    what their bodies must hold (an input's name, its shape) depends on the model, so a request
    valid by the schema is not one a server accepts, and the fuzz tests generate from this."""
    document = create_app(load_models=False).openapi()
    document["paths"] = {path: item for path, item in document["paths"].items() if not v2.is_v2_path(path)}
    if models is not None:
        for parameter in document["paths"]["/predict/{model}"]["post"]["parameters"]:
            if parameter["name"] == "model":
                parameter["schema"]["enum"] = sorted(models)
    return document
