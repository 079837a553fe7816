"""The Open Inference Protocol (KServe V2, REST with JSON tensors), written once for every Python
stack: the request and response bodies as pydantic models, the decoding of a request's inputs with
every check of docs/api.md ("The Open Inference Protocol"), and the models it serves
(`launch_env.v2_models()`: the Titanic ONNX exports and every model pack) run by ONNX Runtime.

Each stack routes the protocol's endpoints its own way and calls `V2Models`: `infer` with the raw
body (parsed and validated here by pydantic), or `infer_request` with a request its framework
already parsed into `InferenceRequest`. Every refusal is a `V2Error(status, message)`, answered
as `{"error": message}`; a message about an input or an output names it in single quotes.

ONNX Runtime (and, through the inference layer, pandas) is imported by `V2Models` alone: a process
that only routes requests imports the models and the checks without loading a runtime.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from importlib import metadata as distribution
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from servebench.serving.launch_env import v2_models

if TYPE_CHECKING:
    import onnxruntime as ort

PLATFORM = "onnxruntime_onnx"
JSON_TYPE = "application/json"
V2_ROOT = "/v2"
V2_PREFIX = "/v2/"
# ONNX tensor element types served, by their V2 datatype; others are refused when a model loads.
ONNX_DATATYPES = {"tensor(float)": "FP32", "tensor(double)": "FP64", "tensor(int64)": "INT64", "tensor(int32)": "INT32"}
DTYPES = {
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "INT64": np.dtype(np.int64),
    "INT32": np.dtype(np.int32),
}
FLOATS = frozenset({"FP32", "FP64"})
INT_RANGES = {"INT64": (-(2**63), 2**63 - 1), "INT32": (-(2**31), 2**31 - 1)}
# Client-chosen text (a name, a datatype) is echoed in a message up to this many characters.
ECHO_LIMIT = 200
WARM_UP_RUNS = 20


def _version() -> str:
    try:
        return distribution.version("servebench")
    except distribution.PackageNotFoundError:
        return "0"


VERSION = _version()
LIVE = {"live": True}
READY = {"ready": True}


# --- The bodies ---------------------------------------------------------------------------------

# Strict: a shape is made of JSON integers (not 3.0, not true) and an id is a string. Keys the
# protocol does not define are ignored, as KServe's own server does. `data` is checked against the
# model's input by `decode`, which knows the datatype.
_REQUEST = ConfigDict(strict=True, protected_namespaces=())
_RESPONSE = ConfigDict(protected_namespaces=())


class RequestInput(BaseModel):
    model_config = _REQUEST

    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] | None = None
    data: list[Any]


class RequestOutput(BaseModel):
    model_config = _REQUEST

    name: str
    parameters: dict[str, Any] | None = None


class InferenceRequest(BaseModel):
    model_config = _REQUEST

    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[RequestInput]
    outputs: list[RequestOutput] | None = None


class ResponseOutput(BaseModel):
    model_config = _RESPONSE

    name: str
    datatype: str
    shape: list[int]
    parameters: dict[str, Any] | None = None
    # Flat, row-major; integers stay integers.
    data: list[int] | list[float]


class InferenceResponse(BaseModel):
    model_config = _RESPONSE

    model_name: str
    model_version: str | None = None
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[ResponseOutput]


class TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int]  # -1 for a dynamic dimension


class ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class ServerLive(BaseModel):
    live: bool


class ServerReady(BaseModel):
    ready: bool


class ModelReady(BaseModel):
    name: str
    ready: bool


class ErrorBody(BaseModel):
    error: str


def server_metadata(server_id: str) -> dict[str, Any]:
    """GET /v2: the server's id (what /health calls its framework)."""
    return {"name": server_id, "version": VERSION, "extensions": []}


# --- Errors -------------------------------------------------------------------------------------


class V2Error(Exception):
    """A refusal of the protocol: its status and the message of its body, `{"error": message}`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def body(self) -> dict[str, str]:
        return {"error": self.message}


# The protocol's errors beside the 200, for a framework's OpenAPI document.
ERRORS = {
    400: "Not JSON, not an inference request, or tensors that do not fit the model; the message names the input "
    "or output in single quotes.",
    404: "Unknown model.",
    405: "Method not allowed.",
    413: "Body over 1 MiB.",
    415: "Content-Type neither absent nor application/json.",
}


def quoted(text: str) -> str:
    """Client-chosen text in single quotes, cut at ECHO_LIMIT characters."""
    return f"'{text}'" if len(text) <= ECHO_LIMIT else f"'{text[:ECHO_LIMIT]}…'"


def unknown_model(name: str) -> V2Error:
    return V2Error(404, f"unknown model {quoted(name)}")


def is_v2_path(path: str) -> bool:
    """A path of the protocol: /v2 and everything under it."""
    return path == V2_ROOT or path.startswith(V2_PREFIX)


def accepts_media_type(content_type: str | None) -> bool:
    """The protocol's Content-Type rule: none, or application/json (parameters such as charset
    allowed). Unlike the record API, a client may send no Content-Type at all."""
    if not content_type or not content_type.strip():
        return True
    return content_type.split(";", 1)[0].strip().lower() == JSON_TYPE


UNSUPPORTED_MEDIA_TYPE = "Content-Type must be application/json, or absent"


def check_media_type(content_type: str | None) -> None:
    """The 415 for a body declared anything but JSON."""
    if not accepts_media_type(content_type):
        raise V2Error(415, UNSUPPORTED_MEDIA_TYPE)


def _field_path(loc: Sequence[int | str]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def request_error(errors: Sequence[Any]) -> V2Error:
    """A pydantic ValidationError's `errors()` (or FastAPI's RequestValidationError's, whose paths
    start at "body") as the protocol's 400, naming the field at fault."""
    first = errors[0] if errors else {"type": "", "loc": (), "msg": "invalid request"}
    kind, loc = first.get("type", ""), tuple(first.get("loc", ()))
    if loc[:1] == ("body",):
        loc = loc[1:]
    if kind == "json_invalid":
        return V2Error(400, f"the body is not JSON: {first.get('ctx', {}).get('error', first.get('msg'))}")
    if kind == "missing" and not loc:
        return V2Error(400, "the body is empty: an inference request is a JSON object")
    return V2Error(400, f"{_field_path(loc) or 'body'}: {first.get('msg', 'invalid')}")


# --- Tensors ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tensor:
    """A graph input or output: name, V2 datatype, shape with -1 for a dynamic dimension."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    @property
    def dtype(self) -> np.dtype[Any]:
        return DTYPES[self.datatype]

    @cached_property
    def where(self) -> str:
        """How a message names it: `input 'a'`."""
        return f"input {quoted(self.name)}"

    @cached_property
    def limit(self) -> float:
        """The largest magnitude of a float datatype."""
        return float(np.finfo(self.dtype).max) if self.datatype in FLOATS else 0.0

    def metadata(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


def _flatten(data: list[Any]) -> list[Any]:
    """Nested lists, row-major, as one flat list; iterative, so that deep nesting costs no stack."""
    flat: list[Any] = []
    stack: list[Iterator[Any]] = [iter(data)]
    while stack:
        for item in stack[-1]:
            if type(item) is list:
                stack.append(iter(item))
                break
            flat.append(item)
        else:
            stack.pop()
    return flat


NUMBERS = frozenset({int, float})
_KINDS = {str: "a string", bool: "a boolean", type(None): "null", dict: "an object"}


def _first(flat: list[Any], bad: Callable[[Any], bool]) -> tuple[int, Any]:
    return next((i, v) for i, v in enumerate(flat) if bad(v))


def _not_a_number(tensor: Tensor, flat: list[Any]) -> V2Error:
    i, value = _first(flat, lambda v: type(v) not in NUMBERS)
    kind = _KINDS.get(type(value), type(value).__name__)
    return V2Error(400, f"{tensor.where}: data[{i}] is {kind}, not a number of {tensor.datatype}")


def _out_of_range(tensor: Tensor, i: int, value: Any) -> V2Error:
    text = repr(value) if len(repr(value)) <= 40 else f"{repr(value)[:40]}…"
    return V2Error(400, f"{tensor.where}: data[{i}] = {text} is out of the range of {tensor.datatype}")


def _beyond(limit: float) -> Callable[[Any], bool]:
    def beyond(value: Any) -> bool:
        try:
            return not abs(float(value)) <= limit  # NaN too
        except OverflowError:  # an integer beyond any double
            return True

    return beyond


def _shape_error(tensor: Tensor, shape: list[int]) -> V2Error:
    want = list(tensor.shape)
    if len(shape) != len(want):
        return V2Error(400, f"{tensor.where}: shape {shape} has rank {len(shape)}; the model takes {want}")
    if any(d < 0 for d in shape):
        return V2Error(400, f"{tensor.where}: shape {shape} has a negative dimension")
    if any(d == 0 for d in shape):
        return V2Error(400, f"{tensor.where}: shape {shape} is empty; send at least one row")
    axis = next(a for a, (d, w) in enumerate(zip(shape, want, strict=True)) if w >= 0 and d != w)
    return V2Error(
        400, f"{tensor.where}: shape {shape}; the model takes {want}, dimension {axis} fixed to {want[axis]}"
    )


def decode(tensor: Tensor, given: RequestInput) -> np.ndarray:
    """A request's input as the array the model's input takes, or a V2Error(400) naming it: the
    datatype, the rank, every dimension (positive, and equal where the model fixes it), the
    element count against the data (compared before anything is allocated), and every value (a
    number of the datatype, within its range; no string, bool or null)."""
    if given.datatype != tensor.datatype:
        raise V2Error(400, f"{tensor.where}: datatype {quoted(given.datatype)}; the model takes {tensor.datatype}")
    shape = given.shape
    if len(shape) != len(tensor.shape) or not all(
        d > 0 and (w < 0 or d == w) for d, w in zip(shape, tensor.shape, strict=True)
    ):
        raise _shape_error(tensor, shape)
    count = math.prod(shape)  # Python integers: no overflow
    flat = given.data
    types = set(map(type, flat))
    if list in types:
        flat = _flatten(flat)
        types = set(map(type, flat))
    if len(flat) != count:
        raise V2Error(400, f"{tensor.where}: shape {shape} has {count} elements, data has {len(flat)}")
    if not types <= NUMBERS:
        raise _not_a_number(tensor, flat)
    values = _floats(tensor, flat) if tensor.datatype in FLOATS else _integers(tensor, flat, types)
    return values.reshape(shape)


def _floats(tensor: Tensor, flat: list[Any]) -> np.ndarray:
    try:
        values = np.array(flat, dtype=np.float64)
    except OverflowError:  # an integer beyond any double
        raise _out_of_range(tensor, *_first(flat, _beyond(tensor.limit))) from None
    # Within the datatype's range, and finite: NaN and Infinity are not JSON, but lenient parsers
    # (Python's json, pydantic's) read them, and 1e400 reads as infinity. NaN fails the comparison.
    if not np.abs(values).max() <= tensor.limit:
        raise _out_of_range(tensor, *_first(flat, _beyond(tensor.limit)))
    return values if tensor.datatype == "FP64" else values.astype(np.float32)


def _integers(tensor: Tensor, flat: list[Any], types: set[type]) -> np.ndarray:
    if float in types:
        # An integral number written as a float (3.0, 1e3) is an integer, as JSON Schema has it.
        if not all(v.is_integer() for v in flat if type(v) is float):
            i, value = _first(flat, lambda v: type(v) is float and not v.is_integer())
            raise V2Error(400, f"{tensor.where}: data[{i}] = {value!r} is not an integer, as {tensor.datatype} needs")
        flat = [int(v) for v in flat]
    low, high = INT_RANGES[tensor.datatype]
    try:
        values = np.array(flat, dtype=np.int64)
    except OverflowError:
        values = None
    if values is None or (tensor.datatype != "INT64" and (values.min() < low or values.max() > high)):
        raise _out_of_range(tensor, *_first(flat, lambda v: not low <= v <= high))
    return values if tensor.datatype == "INT64" else values.astype(tensor.dtype)


def encode(tensor: Tensor, value: np.ndarray) -> dict[str, Any]:
    """An output as the protocol sends it: flat data of Python numbers."""
    if tensor.datatype in FLOATS and not np.isfinite(value).all():
        # JSON has no NaN or infinity: the inputs drove the model past its numbers.
        raise V2Error(400, f"output {quoted(tensor.name)}: the model's answer to these inputs is not a finite number")
    return {
        "name": tensor.name,
        "datatype": tensor.datatype,
        "shape": list(value.shape),
        "data": value.ravel().tolist(),
    }


# --- The models ---------------------------------------------------------------------------------


def _tensor(model: str, node: Any, role: str) -> Tensor:
    datatype = ONNX_DATATYPES.get(node.type)
    if datatype is None:
        served = ", ".join(ONNX_DATATYPES)
        raise ValueError(f"model {model}: {role} '{node.name}' is a {node.type}; the protocol serves {served}")
    shape = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in (node.shape or []))
    return Tensor(node.name, datatype, shape)


class V2Model:
    """One ONNX model: its session, and its inputs and outputs in graph order."""

    def __init__(self, name: str, session: ort.InferenceSession) -> None:
        self.name = name
        self.session = session
        self.inputs = {node.name: _tensor(name, node, "input") for node in session.get_inputs()}
        self.outputs = {node.name: _tensor(name, node, "output") for node in session.get_outputs()}
        self.output_names = list(self.outputs)

    def metadata(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "versions": [],
            "platform": PLATFORM,
            "inputs": [t.metadata() for t in self.inputs.values()],
            "outputs": [t.metadata() for t in self.outputs.values()],
        }

    def feeds(self, inputs: Sequence[RequestInput]) -> dict[str, np.ndarray]:
        given: dict[str, RequestInput] = {}
        for item in inputs:
            if item.name not in self.inputs:
                takes = ", ".join(quoted(n) for n in self.inputs)
                raise V2Error(400, f"input {quoted(item.name)}: model {quoted(self.name)} has no such input ({takes})")
            if item.name in given:
                raise V2Error(400, f"input {quoted(item.name)}: given twice")
            given[item.name] = item
        if missing := [n for n in self.inputs if n not in given]:
            raise V2Error(400, f"input {quoted(missing[0])}: missing; model {quoted(self.name)} needs every input")
        return {name: decode(tensor, given[name]) for name, tensor in self.inputs.items()}

    def wanted(self, outputs: Sequence[RequestOutput] | None) -> list[str]:
        """The outputs asked for, in the order asked; all of them, in graph order, by default."""
        if not outputs:
            return self.output_names
        names: list[str] = []
        for item in outputs:
            if item.name not in self.outputs:
                has = ", ".join(quoted(n) for n in self.outputs)
                raise V2Error(400, f"output {quoted(item.name)}: model {quoted(self.name)} has no such output ({has})")
            if item.name in names:
                raise V2Error(400, f"output {quoted(item.name)}: asked for twice")
            names.append(item.name)
        return names

    def infer(self, request: InferenceRequest) -> dict[str, Any]:
        feeds = self.feeds(request.inputs)
        names = self.wanted(request.outputs)
        try:
            results = self.session.run(names, feeds)
        except Exception:  # onnxruntime's own untyped errors (Fail, InvalidArgument...): the inputs
            raise V2Error(400, f"model {quoted(self.name)} cannot run on these inputs") from None
        response: dict[str, Any] = {"model_name": self.name}
        if request.id is not None:
            response["id"] = request.id
        response["outputs"] = [encode(self.outputs[n], v) for n, v in zip(names, results, strict=True)]
        return response

    def warm_up(self) -> None:
        """First runs allocate and pick kernels; do that before the server says it is ready. A
        batch of one row of zeros (every dynamic dimension 1)."""
        feeds = {t.name: np.zeros([d if d >= 0 else 1 for d in t.shape], dtype=t.dtype) for t in self.inputs.values()}
        try:
            for _ in range(WARM_UP_RUNS):
                self.session.run(self.output_names, feeds)
        except Exception:  # a model that refuses zeros is still served: warming up is for speed only
            return


class V2Models:
    """Every model served over the protocol, loaded and warmed up, by name."""

    def __init__(self, directory: Path, files: Mapping[str, str]) -> None:
        from servebench.serving.inference import onnx_session

        self.models: dict[str, V2Model] = {
            name: V2Model(name, onnx_session(directory / file)) for name, file in files.items()
        }
        for model in self.models.values():
            model.warm_up()

    @classmethod
    def from_env(cls) -> V2Models:
        """The models the launcher names (`launch_env.v2_models`): the ONNX models of
        SERVEBENCH_MODELS and every pack of SERVEBENCH_PACKS."""
        return cls(*v2_models())

    @property
    def names(self) -> list[str]:
        return sorted(self.models)

    def model(self, name: str) -> V2Model:
        try:
            return self.models[name]
        except KeyError:
            raise unknown_model(name) from None

    def metadata(self, name: str) -> dict[str, Any]:
        return self.model(name).metadata()

    def ready(self, name: str) -> dict[str, Any]:
        self.model(name)
        return {"name": name, "ready": True}

    def infer(self, name: str, body: bytes | str) -> dict[str, Any]:
        """POST /v2/models/{name}/infer from the raw body: the model first (404), then the body
        (400 when it is not JSON or not an inference request), then the tensors (400)."""
        model = self.model(name)
        if not body:
            raise V2Error(400, "the body is empty: an inference request is a JSON object")
        try:
            request = InferenceRequest.model_validate_json(body)
        except ValidationError as exc:
            raise request_error(exc.errors()) from None
        return model.infer(request)

    def infer_request(self, name: str, request: InferenceRequest) -> dict[str, Any]:
        """The same, for a request the framework already parsed and validated."""
        return self.model(name).infer(request)
