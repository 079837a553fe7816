"""The request contract of docs/api.md: parse a body, validate it, name the field at fault.

Both Python servers call `parse_request`; the Rust servers implement the same rules, and the
vectors in tests/vectors/contract.json hold all of them to the same answers.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

MODELS = ("pytorch", "lightgbm", "pytorch_onnx", "lightgbm_onnx")
ONNX_MODELS = ("pytorch_onnx", "lightgbm_onnx")
FIELDS = ("Pclass", "Sex", "Age", "SibSp", "Parch", "Fare")
SEXES = ("female", "male")
MAX_BODY_BYTES = 1 << 20
MAX_BATCH = 1024
MAX_DEPTH = 32
AGE_MAX = 200.0
FARE_MAX = 100_000.0
COUNT_MAX = 100


@dataclass(frozen=True)
class Passenger:
    """One validated passenger, as the client sent it (Age None when unknown)."""

    pclass: int
    sex: str
    age: float | None
    sibsp: int
    parch: int
    fare: float


class ContractError(Exception):
    """A request the contract rejects: an HTTP status and a message naming the field."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field

    def body(self) -> dict[str, Any]:
        return {"error": self.message, "field": self.field}


def _reject_constant(name: str) -> float:
    raise ContractError(400, f"malformed JSON: {name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ContractError(400, f"malformed JSON: number {text[:40]} is too large for a double")
    return value


def _bounded_int(text: str) -> int:
    value = int(text)
    try:
        float(value)
    except OverflowError:
        raise ContractError(400, f"malformed JSON: number {text[:40]}... is too large for a double") from None
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise ContractError(400, f"malformed JSON: duplicate key '{key}'", key)
        obj[key] = value
    return obj


_DECODER = json.JSONDecoder(
    object_pairs_hook=_unique_keys,
    parse_float=_finite_float,
    parse_int=_bounded_int,
    parse_constant=_reject_constant,
)


def _depth(value: Any) -> int:
    """Nesting depth, iteratively: the documents measured here may be deep on purpose."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        if deepest > MAX_DEPTH:
            return deepest
        stack.extend((child, level + 1) for child in children)
    return deepest


def check_content_type(content_type: str | None) -> None:
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise ContractError(415, "Content-Type must be application/json", None)


def decode_json(body: bytes) -> Any:
    try:
        return _DECODER.decode(body.decode("utf-8"))
    except ContractError:
        raise
    except UnicodeDecodeError:
        raise ContractError(400, "malformed JSON: body is not UTF-8") from None
    except RecursionError:
        raise ContractError(400, f"malformed JSON: nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:
        raise ContractError(400, f"malformed JSON: {exc}") from None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _integer(obj: dict[str, Any], name: str, low: int, high: int, path: str) -> int:
    value = obj[name]
    if _is_number(value) and float(value).is_integer() and low <= value <= high:
        return int(value)
    raise ContractError(422, f"{name} must be an integer between {low} and {high}", path + name)


def _number(obj: dict[str, Any], name: str, high: float, path: str, nullable: bool) -> float | None:
    value = obj.get(name)
    if value is None and nullable:
        return None
    if _is_number(value) and 0 <= value <= high:
        return float(value)
    suffix = " or null" if nullable else ""
    raise ContractError(422, f"{name} must be a number between 0 and {high:g}{suffix}", path + name)


def validate_passenger(obj: Any, path: str = "") -> Passenger:
    """Check one passenger object; `path` prefixes field names inside a batch."""
    where = path.rstrip(".") or "body"
    if not isinstance(obj, dict):
        raise ContractError(422, f"{where} must be a JSON object", path.rstrip(".") or None)

    def required(name: str) -> None:
        if name not in obj:
            raise ContractError(422, f"{name} is required", path + name)

    required("Pclass")
    pclass = _integer(obj, "Pclass", 1, 3, path)
    required("Sex")
    sex = obj["Sex"]
    if not isinstance(sex, str) or sex not in SEXES:
        raise ContractError(422, "Sex must be 'male' or 'female'", path + "Sex")
    age = _number(obj, "Age", AGE_MAX, path, nullable=True)
    required("SibSp")
    sibsp = _integer(obj, "SibSp", 0, COUNT_MAX, path)
    required("Parch")
    parch = _integer(obj, "Parch", 0, COUNT_MAX, path)
    required("Fare")
    fare = _number(obj, "Fare", FARE_MAX, path, nullable=False)
    unknown = sorted(set(obj) - set(FIELDS))
    if unknown:
        raise ContractError(422, f"unknown field '{unknown[0]}'", path + unknown[0])
    assert fare is not None
    return Passenger(pclass, sex, age, sibsp, parch, fare)


def validate_body(doc: Any) -> tuple[list[Passenger], bool]:
    """Validate a decoded body; returns the passengers and whether it was a batch."""
    if isinstance(doc, dict) and "instances" in doc:
        extra = sorted(set(doc) - {"instances"})
        if extra:
            raise ContractError(422, f"unknown field '{extra[0]}' beside instances", extra[0])
        instances = doc["instances"]
        if not isinstance(instances, list) or not 1 <= len(instances) <= MAX_BATCH:
            raise ContractError(422, f"instances must be an array of 1 to {MAX_BATCH} passengers", "instances")
        return [validate_passenger(p, f"instances[{i}].") for i, p in enumerate(instances)], True
    return [validate_passenger(doc)], False


def parse_request(body: bytes, content_type: str | None) -> tuple[list[Passenger], bool]:
    """Everything between the raw request and validated passengers, in the contract's order."""
    if len(body) > MAX_BODY_BYTES:
        raise ContractError(413, f"body exceeds {MAX_BODY_BYTES} bytes")
    check_content_type(content_type)
    doc = decode_json(body)
    try:
        return validate_body(doc)
    except ContractError:
        if _depth(doc) > MAX_DEPTH:
            raise ContractError(400, f"malformed JSON: nested deeper than {MAX_DEPTH} levels") from None
        raise
