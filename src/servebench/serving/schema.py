"""The request and response bodies of docs/api.md as pydantic models: shared by the Python apps,
validated by FastAPI from the handler's signature and by Flask after `request.get_json()`, and
the source of the OpenAPI document the fuzz tests generate requests from for every server."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag, TypeAdapter

from servebench.contract import AGE_MAX, COUNT_MAX, FARE_MAX, MAX_BATCH

# Numbers must be JSON numbers: strict mode refuses "3" and true, as serde does in the Rust servers.
_STRICT = ConfigDict(extra="forbid", strict=True)


def _integral(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


# An integer as JSON Schema (and so the OpenAPI document) has it: 3 or 3.0, not 2.5. The validator
# comes after the bounds, so that they stay `minimum`/`maximum` in the schema.
Pclass = Annotated[int, Field(ge=1, le=3), BeforeValidator(_integral)]
Count = Annotated[int, Field(ge=0, le=COUNT_MAX), BeforeValidator(_integral)]


class Passenger(BaseModel):
    model_config = _STRICT

    Pclass: Pclass
    Sex: Literal["male", "female"]
    Age: Annotated[float | None, Field(ge=0, le=AGE_MAX, allow_inf_nan=False)] = None
    SibSp: Count
    Parch: Count
    Fare: Annotated[float, Field(ge=0, le=FARE_MAX, allow_inf_nan=False)]


class Batch(BaseModel):
    model_config = _STRICT

    instances: Annotated[list[Passenger], Field(min_length=1, max_length=MAX_BATCH)]


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "batch" if "instances" in value else "passenger"
    return "batch" if isinstance(value, Batch) else "passenger"


# One passenger, or {"instances": [...]}: an object with an `instances` key is a batch. The
# callable discriminator keeps the error of the one model that applies, with its field path.
PredictRequest = Annotated[
    Annotated[Passenger, Tag("passenger")] | Annotated[Batch, Tag("batch")],
    Discriminator(_kind),
]
PREDICT_REQUEST: TypeAdapter[Passenger | Batch] = TypeAdapter(PredictRequest)
_TAGS = ("passenger", "batch")


class Prediction(BaseModel):
    survived: Literal[0, 1]
    probability: Annotated[float, Field(ge=0, le=1)]


class BatchPrediction(BaseModel):
    predictions: list[Prediction]


class ErrorBody(BaseModel):
    error: str
    field: str | None


class Health(BaseModel):
    status: Literal["ok"]
    framework: str
    models: list[str]


ERRORS = {
    400: "The body is not JSON.",
    404: "Unknown model or path.",
    405: "Method not allowed.",
    413: "Body over 1 MiB.",
    415: "Content-Type is not application/json.",
    422: "Valid JSON that breaks a field rule; `field` names it.",
}
SERVER_TIMING = {
    "Server-Timing": {
        "description": "app;dur=<ms>: time from the request entering the application to its response leaving it",
        "required": True,
        "schema": {"type": "string", "pattern": r"^app;dur=[0-9.]+$"},
    }
}
# The responses of POST /predict/{model} beside the 200, for FastAPI's `responses=`.
RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"headers": SERVER_TIMING},
    **{code: {"description": text, "model": ErrorBody} for code, text in ERRORS.items()},
}


def predictions(probabilities: Sequence[float], batch: bool) -> Prediction | BatchPrediction:
    answers = [Prediction(survived=int(p >= 0.5), probability=float(p)) for p in probabilities]
    return BatchPrediction(predictions=answers) if batch else answers[0]


def field_path(loc: Sequence[int | str]) -> str | None:
    """`("body", "batch", "instances", 3, "Age")` → `instances[3].Age`; None for the whole body."""
    parts = list(loc)
    if parts[:1] == ["body"]:
        parts = parts[1:]
    if parts[:1] and parts[0] in _TAGS:
        parts = parts[1:]
    path = ""
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or None


def validation_failure(errors: Sequence[Any]) -> tuple[int, str, str | None]:
    """Status, message and field of a pydantic (or FastAPI) validation failure: the first error
    decides. A body that is not JSON at all is a 400, anything else a 422."""
    first = errors[0] if errors else {"type": "", "loc": (), "msg": "invalid request"}
    kind, loc = first.get("type", ""), tuple(first.get("loc", ()))
    if kind == "json_invalid":
        return 400, f"malformed JSON: {first.get('ctx', {}).get('error', first.get('msg'))}", None
    if kind == "missing" and loc in {("body",), ()}:
        return 400, "malformed JSON: the body is empty", None
    field = field_path(loc)
    return 422, f"{field or 'body'}: {first.get('msg', 'invalid')}", field


def validate(doc: Any) -> Passenger | Batch:
    """A decoded body as a passenger or a batch; raises pydantic's ValidationError."""
    return PREDICT_REQUEST.validate_python(doc)
