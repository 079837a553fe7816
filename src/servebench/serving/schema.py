"""The contract as an OpenAPI document: published by the FastAPI app, and what the fuzz tests
generate requests from for every server."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from servebench.contract import AGE_MAX, COUNT_MAX, FARE_MAX, MAX_BATCH


class Passenger(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    Pclass: Annotated[int, Field(ge=1, le=3)]
    Sex: Literal["male", "female"]
    Age: Annotated[float | None, Field(ge=0, le=AGE_MAX)] = None
    SibSp: Annotated[int, Field(ge=0, le=COUNT_MAX)]
    Parch: Annotated[int, Field(ge=0, le=COUNT_MAX)]
    Fare: Annotated[float, Field(ge=0, le=FARE_MAX)]


class Batch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    instances: Annotated[list[Passenger], Field(min_length=1, max_length=MAX_BATCH)]


class Prediction(BaseModel):
    model_config = ConfigDict(extra="forbid")

    survived: Literal[0, 1]
    probability: Annotated[float, Field(ge=0, le=1)]


class BatchPrediction(BaseModel):
    model_config = ConfigDict(extra="forbid")

    predictions: list[Prediction]


class ErrorBody(BaseModel):
    error: str
    field: str | None


class Health(BaseModel):
    status: Literal["ok"]
    framework: str
    models: list[str]


ERRORS = {
    400: "The body is not JSON (or has a duplicate key, a non-finite literal, deep nesting).",
    404: "Unknown model or path.",
    405: "Method not allowed.",
    413: "Body over 1 MiB.",
    415: "Content-Type is not application/json.",
    422: "Valid JSON that breaks a field rule; `field` names it.",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def predict_openapi_extra() -> dict[str, Any]:
    """requestBody and responses of POST /predict/{model}, for FastAPI's `openapi_extra`."""
    error = {"application/json": {"schema": _ref("ErrorBody")}}
    responses: dict[str, Any] = {
        "200": {
            "description": "Survival prediction(s).",
            "headers": {
                "Server-Timing": {
                    "description": "app;dur=<ms> spent in the handler",
                    "required": True,
                    "schema": {"type": "string", "pattern": r"^app;dur=[0-9.]+$"},
                }
            },
            "content": {"application/json": {"schema": {"anyOf": [_ref("Prediction"), _ref("BatchPrediction")]}}},
        }
    }
    responses.update({str(code): {"description": text, "content": error} for code, text in ERRORS.items()})
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"anyOf": [_ref("Passenger"), _ref("Batch")]}}},
        },
        "responses": responses,
    }


def component_schemas() -> dict[str, Any]:
    """JSON schemas of the contract's bodies, with references rewritten for components."""
    schemas: dict[str, Any] = {}
    for model in (Passenger, Batch, Prediction, BatchPrediction, ErrorBody, Health):
        doc = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(doc.pop("$defs", {}))
        schemas[model.__name__] = doc
    return schemas


def restrict_models(openapi: dict[str, Any], models: list[str]) -> dict[str, Any]:
    """The same document for a server that serves only `models` (the Rust servers)."""
    for parameter in openapi["paths"]["/predict/{model}"]["post"]["parameters"]:
        if parameter["name"] == "model":
            parameter["schema"]["enum"] = sorted(models)
    return openapi
