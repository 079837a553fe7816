"""Ray Serve: the FastAPI app of servers/fastapi, unchanged (its `create_app`), as the HTTP ingress
of one deployment with one replica.

Ray Serve's proxy actor accepts the HTTP connection and hands each request to the replica as a Ray
actor call; the replica runs the FastAPI app (routing, pydantic validation, the error handlers,
ServerTiming and BodyLimit, the shared inference layer, and the Open Inference Protocol's /v2
routes with their ONNX sessions) as it runs under uvicorn in servers/fastapi. What differs from
that stack is Ray Serve itself: the proxy, the hop to the replica and back, and the control plane
beside them.

`app` is what main.py deploys, and what `serve run serve_app:app` deploys on a running cluster.
"""

import importlib.util
from pathlib import Path

from fastapi import FastAPI
from ray import serve

FASTAPI_APP = Path(__file__).resolve().parent.parent / "fastapi" / "app.py"


def fastapi_app() -> FastAPI:
    """The app of servers/fastapi, built in the replica (Serve calls this builder there), so that
    the models (the record API's and the protocol's) load once, in the process that serves them."""
    spec = importlib.util.spec_from_file_location("servebench_fastapi_app", FASTAPI_APP)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    app: FastAPI = module.create_app()
    return app


# One replica of one CPU, the core the launcher gives the server.
# max_ongoing_requests: Serve's proxy hands a request to the replica as soon as its head is in,
# and the request holds one of the replica's slots until its answer is out. At Serve's default
# of 5, five clients trickling their bodies hold every slot and nothing else is served; the
# replica's FastAPI app is async and predicts inline in tens of microseconds, so it can take
# as many requests at once as uvicorn does in servers/fastapi. 1024 is above any concurrency
# the benchmark and the tests use (256).
# max_constructor_retry_count: a replica whose constructor fails (a missing or corrupt model
# file) fails the same way again; one failure, not Serve's three, each in a fresh worker
# process, ends the deployment.
@serve.deployment(
    num_replicas=1,
    ray_actor_options={"num_cpus": 1},
    max_ongoing_requests=1024,
    max_constructor_retry_count=1,
)
@serve.ingress(fastapi_app)
class Titanic:
    """No code of its own: every route is the FastAPI app's."""


app = Titanic.bind()
