"""KServe's Python model server: one `kserve.Model` per ONNX model (the Titanic exports and every
model pack), each running ONNX Runtime, served by `kserve.ModelServer().start([...])` over KServe's
own Open Inference Protocol (V2) REST endpoints, as KServe's custom model server documentation
has it.

A model's `predict` takes KServe's `InferRequest` and answers an `InferResponse` built with its
numpy helper (`InferOutput.set_data_from_numpy`). The inputs go through the shared protocol's
checks (servebench.serving.v2: names, datatypes, shapes, ranges, each refusal a 400 naming the
input), so that every stack refuses the same tensors the same way.

The record API (/predict/{model}) and /health are routes of KServe's own FastAPI app
(`kserve.model_server.app`, the module-level app its REST server serves), added before the server
starts; the predictions come from the shared inference layer (servebench.serving.inference), as
the other Python stacks have them.

KServe's REST server binds 0.0.0.0 with no option to change it: `LoopbackRESTServer`, KServe's
REST server with the host the launcher gives, takes its place in `kserve.model_server` (see
docs/servers.md). gRPC is off (`--enable_grpc false` on the command line).
"""

import argparse
import logging
from pathlib import Path
from typing import Annotated, Any

import kserve
import numpy as np
from fastapi import Depends, HTTPException
from kserve import InferOutput, InferRequest, InferResponse, model_server
from kserve.protocol.rest.server import RESTServer
from kserve.utils.utils import generate_uuid
from starlette.types import ASGIApp, Receive, Scope, Send

from servebench.serving import v2
from servebench.serving.errors import install_error_handlers
from servebench.serving.gate import ContractGate
from servebench.serving.inference import Inference, onnx_session
from servebench.serving.launch_env import server_id, v2_models
from servebench.serving.middleware import ServerTiming
from servebench.serving.schema import Batch, BatchPrediction, Health, Prediction, PredictRequest, predictions

SERVER_ID = "kserve"

# The host KServe's REST server binds, set from --host before the server starts.
_host = "127.0.0.1"


class LoopbackRESTServer(RESTServer):
    """KServe's REST server on the launcher's host: upstream hard-codes uvicorn's host to 0.0.0.0."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.config.host = _host


class OnnxModel(kserve.Model):
    """One ONNX model of the Open Inference Protocol, its session loaded and warmed by `load`."""

    def __init__(self, name: str, path: Path) -> None:
        super().__init__(name)
        self.path = path
        self.model: v2.V2Model | None = None

    def load(self) -> bool:
        self.model = v2.V2Model(self.name, onnx_session(self.path))
        self.model.warm_up()
        self.ready = True
        return self.ready

    def get_input_types(self) -> list[dict[str, Any]]:
        assert self.model is not None
        return [t.metadata() for t in self.model.inputs.values()]

    def get_output_types(self) -> list[dict[str, Any]]:
        assert self.model is not None
        return [t.metadata() for t in self.model.outputs.values()]

    def predict(
        self,
        payload: InferRequest,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> InferResponse:
        assert self.model is not None
        model = self.model
        # KServe has parsed the body; the tensors' data is checked against the graph here. A
        # V2Error is answered by the shared handler, `{"error": message}`, without KServe's
        # traceback in the log for every bad request.
        inputs = [
            v2.RequestInput.model_construct(name=i.name, shape=list(i.shape), datatype=i.datatype, data=_data(i.data))
            for i in payload.inputs
        ]
        wanted = [v2.RequestOutput.model_construct(name=o.name) for o in payload.request_outputs or []]
        feeds = model.feeds(inputs)
        names = model.wanted(wanted)
        try:
            results = model.session.run(names, feeds)
        except Exception:  # ONNX Runtime's own untyped errors: the inputs do not fit the graph
            raise v2.V2Error(400, f"model {v2.quoted(self.name)} cannot run on these inputs") from None
        outputs = []
        for name, value in zip(names, results, strict=True):
            tensor = model.outputs[name]
            if tensor.datatype in v2.FLOATS and not np.isfinite(value).all():
                message = "the model's answer to these inputs is not a finite number"
                raise v2.V2Error(400, f"output {v2.quoted(name)}: {message}")
            output = InferOutput(name=name, shape=list(value.shape), datatype=tensor.datatype)
            output.set_data_from_numpy(value, binary_data=False)
            outputs.append(output)
        return InferResponse(
            # KServe's InferenceResponse requires an id: the request's, else one of KServe's
            # (its documentation's custom models do the same).
            response_id=payload.id or generate_uuid(),
            model_name=self.name,
            infer_outputs=outputs,
            use_binary_outputs=False,
        )


class JsonByDefault:
    """Pure ASGI: a POST to /v2/ without Content-Type is JSON, as the protocol's clients send it
    (tritonclient's JSON requests carry none). KServe reads such a body as the binary tensor
    extension and refuses it (400) without that extension's Inference-Header-Content-Length, which
    a binary request always has: those pass untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"].startswith(v2.V2_PREFIX):
            names = {name.lower() for name, _ in scope["headers"]}
            if b"content-type" not in names and b"inference-header-content-length" not in names:
                scope = {**scope, "headers": [*scope["headers"], (b"content-type", v2.JSON_TYPE.encode())]}
        await self.app(scope, receive, send)


def _data(data: Any) -> list[Any]:
    return data.tolist() if isinstance(data, np.ndarray) else list(data)


def add_routes(engine: Inference, identity: str) -> None:
    """The record API and /health on KServe's app: routes added to `kserve.model_server.app`
    before `ModelServer.start` serves it (it adds its own V1/V2 routes, middlewares and exception
    handlers then)."""
    app = model_server.app
    served_models = engine.models

    @app.get("/health")
    async def health() -> Health:
        return Health(status="ok", framework=identity, models=served_models)

    def served(model: str) -> str:
        # A dependency: the 404 comes before FastAPI validates the body.
        if model not in served_models:
            raise HTTPException(404, f"unknown model '{model}'")
        return model

    @app.post("/predict/{model}")
    async def predict(model: Annotated[str, Depends(served)], body: PredictRequest) -> Prediction | BatchPrediction:
        if isinstance(body, Batch):
            return predictions(engine.predict(model, body.instances), batch=True)
        return predictions(engine.predict(model, [body]), batch=False)

    install_error_handlers(app)
    # Outermost last: the gate sees the request as the client sent it.
    app.add_middleware(JsonByDefault)
    app.add_middleware(ContractGate)
    app.add_middleware(ServerTiming)


def main() -> None:
    global _host
    # KServe's own arguments (--http_port, --workers, --enable_grpc...) as its documentation
    # extends them, plus the host to bind.
    parser = argparse.ArgumentParser(parents=[model_server.parser])
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    _host = args.host
    model_server.RESTServer = LoopbackRESTServer  # type: ignore[misc]
    directory, files = v2_models()
    models = [OnnxModel(name, directory / file) for name, file in sorted(files.items())]
    for model in models:
        model.load()
    engine = Inference.from_env()
    add_routes(engine, server_id(SERVER_ID))
    server = kserve.ModelServer()
    # KServe configures its logging in ModelServer(): uvicorn's access log and its own per-request
    # timings (kserve.trace) at INFO, a line or two for every request; warnings and errors stay.
    for name in ("uvicorn.access", "kserve.trace"):
        logging.getLogger(name).setLevel(logging.WARNING)
    server.start(models)


if __name__ == "__main__":
    main()
