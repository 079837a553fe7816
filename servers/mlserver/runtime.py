"""The custom MLServer runtime that runs an ONNX model in ONNX Runtime: MLServer ships no maintained
ONNX runtime, and its documentation's way to serve another framework is an `mlserver.MLModel`
subclass with `load` and `predict`, named by `implementation` in each model-settings.json.

`predict` takes MLServer's parsed `InferenceRequest`; the tensors go through the shared protocol's
checks (servebench.serving.v2: names, datatypes, shapes, ranges, each refusal a 400 naming the
input) so that every stack refuses the same tensors the same way, and each output is encoded by
MLServer's `NumpyCodec`. A refusal is an `MLServerError`, which MLServer answers itself as
`{"error": message}` with its status.

A model that is also a record model (`parameters.extra.record`, written by serve.py) serves the
record API, `POST /predict/<name>`, as an MLServer custom endpoint of its own (`custom_handler`'s
registration, made per instance because the path holds the model's name), with the shared
inference layer's preprocessing (servebench.serving.inference), as the other Python stacks do.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import Request
from fastapi.responses import JSONResponse
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.errors import MLServerError
from mlserver.handlers.custom import CustomHandler, register_custom_handler
from mlserver.types import InferenceRequest, InferenceResponse, MetadataTensor
from pydantic import ValidationError

from servebench.serving import v2
from servebench.serving.errors import error_response
from servebench.serving.inference import Inference, onnx_session
from servebench.serving.schema import Batch, predictions, validate, validation_failure

# Why each model that failed to load did, and the event serve.py waits on to stop with that: MLServer
# drops a model that fails to load, logs it, and keeps serving the others (its own shutdown on a
# failed start-up does not stop uvicorn if it comes before uvicorn has started).
LOAD_FAILURES: list[str] = []
LOAD_FAILED = asyncio.Event()


class OnnxRuntime(MLModel):
    """One ONNX model: its session loaded and warmed up by `load`, run by `predict`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.model: v2.V2Model | None = None
        self.engine: Inference | None = None
        extra = (self.settings.parameters.extra if self.settings.parameters else None) or {}
        if extra.get("record"):
            # Registered before the server looks for custom endpoints, which it does on the
            # instance (inspect.getmembers) right after `load`.
            async def predict_records(request: Request) -> JSONResponse:
                return await self._predict_records(request)

            handler = CustomHandler(rest_path=f"/predict/{self.name}", rest_method="POST")
            register_custom_handler(handler, predict_records)
            self.predict_records = predict_records

    async def load(self) -> bool:
        path = Path(self.settings.parameters.uri)  # type: ignore[union-attr,arg-type]
        try:
            self._load(path)
        except Exception as exc:
            LOAD_FAILURES.append(f"model {self.name} ({path.name}): {exc}")
            LOAD_FAILED.set()
            raise
        return True

    def _load(self, path: Path) -> None:
        model = v2.V2Model(self.name, onnx_session(path))
        model.warm_up()
        self.model = model
        self.inputs = [MetadataTensor(**t.metadata()) for t in model.inputs.values()]
        self.outputs = [MetadataTensor(**t.metadata()) for t in model.outputs.values()]
        if hasattr(self, "predict_records"):
            self.engine = Inference(path.parent, {self.name: path.name})

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        assert self.model is not None
        model = self.model
        inputs = []
        for k, given in enumerate(payload.inputs):
            data = given.data.root
            if not isinstance(data, list):
                raise MLServerError(f"inputs[{k}].data: Input should be a valid list")
            inputs.append(
                v2.RequestInput.model_construct(
                    name=given.name,
                    shape=list(given.shape),
                    datatype=str(getattr(given.datatype, "value", given.datatype)),
                    data=data,
                )
            )
        wanted = [v2.RequestOutput.model_construct(name=o.name) for o in payload.outputs or []]
        try:
            feeds = model.feeds(inputs)
            names = model.wanted(wanted)
        except v2.V2Error as exc:
            raise MLServerError(exc.message, exc.status) from None
        try:
            results = model.session.run(names, feeds)
        except Exception:  # ONNX Runtime's own untyped errors: the inputs do not fit the graph
            raise MLServerError(f"model {v2.quoted(self.name)} cannot run on these inputs") from None
        outputs = []
        for name, value in zip(names, results, strict=True):
            if model.outputs[name].datatype in v2.FLOATS and not np.isfinite(value).all():
                message = "the model's answer to these inputs is not a finite number"
                raise MLServerError(f"output {v2.quoted(name)}: {message}")
            output = NumpyCodec.encode_output(name, value)
            # The codec adds a second dimension to a 1-D tensor (MLServer's batch convention for
            # a column of scalars); the protocol's output has the graph's shape.
            output.shape = list(value.shape)
            outputs.append(output)
        return InferenceResponse(model_name=self.name, id=payload.id, outputs=outputs)

    async def _predict_records(self, request: Request) -> JSONResponse:
        """POST /predict/<name>: a passenger or a batch of them (docs/api.md)."""
        assert self.engine is not None
        try:
            doc = json.loads(await request.body())
        except RecursionError:
            return error_response(400, "malformed JSON: nested too deeply")
        except ValueError as exc:
            return error_response(400, f"malformed JSON: {exc}")
        try:
            body = validate(doc)
        except ValidationError as exc:
            return error_response(*validation_failure(exc.errors()))
        batch = isinstance(body, Batch)
        passengers = body.instances if isinstance(body, Batch) else [body]
        result = predictions(self.engine.predict(self.name, passengers), batch=batch)
        return JSONResponse(result.model_dump())
