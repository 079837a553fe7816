"""Each model's inference alone: its runtime called in-process, with the servers' own settings
(servebench.serving.inference: one thread), on one row and on a batch, with no HTTP. Beside an
endpoint's latency it shows which share is serving overhead, and where, as the model grows, the
choice of stack stops mattering.

Run by the run in a process of its own, pinned to the servers' core:
`python -m servebench.bench.inference_alone MODELS_DIR MODEL...` prints JSON, one record a model."""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

BATCH = 32
CALLS_S = 0.5  # seconds of calls per part; the median call is reported


def _median_call_ms(call: Callable[[], object], seconds: float = CALLS_S) -> tuple[float, int]:
    for _ in range(20):
        call()
    times: list[int] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(times) < 20:
        start = time.perf_counter_ns()
        call()
        times.append(time.perf_counter_ns() - start)
    return statistics.median(times) / 1e6, len(times)


def _pack_calls(models: Path, model: str) -> tuple[str, Callable[[int], Callable[[], object]], int | None]:
    from servebench.packs import installed

    pack = installed(models, model)
    assert pack is not None
    session = pack.session

    def calls(rows: int) -> Callable[[], object]:
        feeds = pack.feeds([i % pack.rows for i in range(rows)])
        return lambda: session.run(None, feeds)

    return "onnxruntime", calls, pack.max_batch


def _titanic_calls(models: Path, model: str) -> tuple[str, Callable[[int], Callable[[], object]], int | None]:
    from servebench import registry
    from servebench.bench.client import passenger, read_reference
    from servebench.serving.inference import Inference
    from servebench.serving.schema import Passenger

    spec = next(m for m in registry.models() if m.name == model)
    inference = Inference(models, {model: spec.file})
    rows = read_reference(models / "reference.jsonl")
    passengers = [Passenger.model_validate(passenger(r)) for r in rows]
    runtime = {"torch": "torch", "lightgbm": "LightGBM", "onnx": "onnxruntime"}[spec.format]

    def calls(n: int) -> Callable[[], object]:
        assert inference.preprocessor is not None
        x = inference.preprocessor.transform_passengers([passengers[i % len(passengers)] for i in range(n)])
        return lambda: inference.predict_features(model, x)

    return runtime, calls, None


def measure(models: Path, model: str) -> dict[str, Any]:
    from servebench.packs import installed

    maker = _pack_calls if installed(models, model) is not None else _titanic_calls
    runtime, calls, max_batch = maker(models, model)
    single_ms, single_n = _median_call_ms(calls(1))
    record: dict[str, Any] = {"model": model, "runtime": runtime, "single_ms": single_ms, "single_calls": single_n}
    if max_batch is None:
        batch_ms, batch_n = _median_call_ms(calls(BATCH))
        record.update(batch_rows=BATCH, batch_ms=batch_ms, batch_ms_per_row=batch_ms / BATCH, batch_calls=batch_n)
    return record


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: python -m servebench.bench.inference_alone MODELS_DIR MODEL...", file=sys.stderr)
        return 2
    from servebench.serving.inference import configure_threads

    configure_threads()
    models = Path(argv[0])
    records = []
    for model in argv[1:]:
        try:
            records.append(measure(models, model))
        except Exception as exc:  # one model's failure is recorded, the others are measured
            records.append({"model": model, "error": f"{type(exc).__name__}: {exc}"})
    print(json.dumps(records))
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main(sys.argv[1:]))
