"""Model packs: the reader's own model, as a folder of `model.onnx` and `sample.csv` (or
`sample.parquet`), with an optional `model.yaml`. Everything a pack needs is checked here, before
any server starts, and a pack that cannot be served is refused with a message that names the
problem and the fix.

The sample's columns fill the graph's inputs in the graph's order: an input of shape [N, 3] takes
the next three columns, one of shape [N] or [N, 1] the next one. The first dimension of every
input is the batch (dynamic, or fixed to 1); the others must be fixed."""

from __future__ import annotations

import math
import re
import shutil
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from servebench.registry import PACK_MODEL, PACKS_DIR

SAMPLES = ("sample.csv", "sample.parquet")
DESCRIPTION = "model.yaml"
MAX_SAMPLE_ROWS = 1000
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# ONNX's element types that the Open Inference Protocol serves here, by their V2 datatype.
DATATYPES = {1: "FP32", 11: "FP64", 7: "INT64", 6: "INT32"}
NUMPY = {"FP32": np.float32, "FP64": np.float64, "INT64": np.int64, "INT32": np.int32}
ONNX_TYPE_NAMES = {
    0: "undefined",
    2: "uint8",
    3: "int8",
    4: "uint16",
    5: "int16",
    8: "string",
    9: "bool",
    10: "float16",
    12: "uint32",
    13: "uint64",
    16: "bfloat16",
}


class PackError(ValueError):
    """A pack that cannot be served; the message names the problem and the fix."""


class PackDescription(BaseModel):
    """model.yaml: everything optional."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    label: str | None = None
    tolerance: float = Field(default=1e-4, gt=0)
    outputs: list[str] | None = None  # which outputs to compare (default: all)
    native: str | None = None  # a LightGBM text model, relative to the pack, checked against the ONNX
    native_output: str | None = None  # the ONNX output the native model's predictions are compared with


@dataclass(frozen=True)
class Tensor:
    name: str
    datatype: str
    shape: tuple[int, ...]  # -1 for a dynamic dimension

    @property
    def width(self) -> int:
        """Sample columns per row: the product of the dimensions after the batch."""
        return math.prod(self.shape[1:])

    def describe(self) -> str:
        return f"{self.name} {self.datatype} [{', '.join('N' if d < 0 else str(d) for d in self.shape)}]"


@dataclass(frozen=True)
class ModelPack:
    name: str
    label: str
    folder: Path
    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]
    sample: pd.DataFrame = field(repr=False)
    compare: tuple[str, ...]
    tolerance: float
    native: Path | None = None
    native_output: str | None = None

    @property
    def model(self) -> Path:
        return self.folder / PACK_MODEL

    @property
    def rows(self) -> int:
        return len(self.sample)

    @property
    def max_batch(self) -> int | None:
        """None when the batch dimension is dynamic, else the fixed batch (1)."""
        fixed = {t.shape[0] for t in self.inputs if t.shape[0] >= 0}
        return min(fixed) if fixed else None

    def describe(self) -> str:
        size = self.model.stat().st_size
        kib = f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size / 2**10:.1f} KiB"
        inputs = ", ".join(t.describe() for t in self.inputs)
        outputs = ", ".join(t.describe() for t in self.outputs)
        return f"{inputs} → {outputs}; {kib}"

    def feeds(self, rows: slice | list[int]) -> dict[str, np.ndarray]:
        """The graph's inputs for sample rows, split from the columns in order."""
        values = self.sample.iloc[rows].to_numpy()
        feeds, start = {}, 0
        for t in self.inputs:
            part = values[:, start : start + t.width]
            feeds[t.name] = part.astype(NUMPY[t.datatype]).reshape((len(part), *t.shape[1:]))
            start += t.width
        return feeds

    def v2_request(self, rows: slice | list[int]) -> dict[str, Any]:
        """The Open Inference Protocol request for sample rows (flat data, row-major)."""
        return {
            "inputs": [
                {"name": name, "shape": list(x.shape), "datatype": t.datatype, "data": x.reshape(-1).tolist()}
                for t, (name, x) in zip(self.inputs, self.feeds(rows).items(), strict=True)
            ],
            "outputs": [{"name": name} for name in self.compare],
        }

    @cached_property
    def session(self) -> Any:
        from servebench.serving.inference import onnx_session

        return onnx_session(self.model)

    def expected(self, rows: slice | list[int]) -> dict[str, np.ndarray]:
        """onnxruntime in-process on sample rows: the outputs compared, by name."""
        return dict(zip(self.compare, self.session.run(list(self.compare), self.feeds(rows)), strict=True))


def _fail(folder: Path, problem: str, fix: str) -> PackError:
    return PackError(f"model pack {folder}: {problem}; {fix}")


def _tensor(folder: Path, value: Any, role: str) -> Tensor:
    kind = value.type.WhichOneof("value")
    if kind != "tensor_type":
        if role == "output" and kind in {"sequence_type", "map_type"}:
            raise _fail(
                folder,
                f"output '{value.name}' is a {kind.removesuffix('_type')} (a ZipMap of class probabilities)",
                "export the classifier with zipmap=False (skl2onnx: options={id(model): {'zipmap': False}}; "
                "onnxmltools.convert_lightgbm(..., zipmap=False))",
            )
        raise _fail(
            folder, f"{role} '{value.name}' is a {kind}, not a tensor", "export the model with tensor " + role + "s"
        )
    elem = value.type.tensor_type.elem_type
    if elem not in DATATYPES:
        kind_name = ONNX_TYPE_NAMES.get(elem, f"element type {elem}")
        fix = (
            "encode it as numbers in the model (for example a label encoder before export) or before the model"
            if kind_name == "string"
            else "cast it to float32, float64, int64 or int32 in the graph"
        )
        raise _fail(
            folder,
            f"{role} '{value.name}' is a {kind_name} tensor; only float32, float64, int64 and int32 are served",
            fix,
        )
    dims = value.type.tensor_type.shape.dim
    shape = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in dims)
    return Tensor(value.name, DATATYPES[elem], shape)


def _graph(folder: Path) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]]:
    import onnx

    path = folder / PACK_MODEL
    try:
        model = onnx.load(str(path), load_external_data=False)
        onnx.checker.check_model(model)
    except Exception as exc:  # onnx raises DecodeError, ValidationError and others for a bad file
        raise _fail(
            folder,
            f"{PACK_MODEL} is not a valid ONNX model ({type(exc).__name__}: {str(exc)[:200]})",
            "export it again",
        ) from None
    initializers = {i.name for i in model.graph.initializer}
    inputs = tuple(_tensor(folder, v, "input") for v in model.graph.input if v.name not in initializers)
    outputs = tuple(_tensor(folder, v, "output") for v in model.graph.output)
    if not inputs or not outputs:
        raise _fail(folder, "the graph has no inputs or no outputs", "export the model with its inputs and outputs")
    for t in inputs:
        if not t.shape:
            raise _fail(folder, f"input '{t.name}' is a scalar", "give it a batch dimension, e.g. [N, features]")
        if any(d < 0 for d in t.shape[1:]):
            raise _fail(
                folder,
                f"input '{t.name}' has a dynamic dimension after the batch ({t.describe()})",
                "export it with fixed feature dimensions",
            )
        if t.shape[0] not in (-1, 1):
            raise _fail(
                folder,
                f"input '{t.name}' has a fixed batch of {t.shape[0]}",
                "export it with a dynamic batch dimension",
            )
    return inputs, outputs


def _description(folder: Path) -> PackDescription:
    path = folder / DESCRIPTION
    if not path.is_file():
        return PackDescription()
    try:
        return PackDescription.model_validate(yaml.safe_load(path.read_text()) or {})
    except yaml.YAMLError as exc:
        raise _fail(folder, f"{DESCRIPTION} is not YAML ({exc})", "fix its syntax") from None
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'the file'}: {e['msg']}" for e in exc.errors())
        raise _fail(
            folder, f"{DESCRIPTION}: {problems}", "its keys are name, label, tolerance, outputs, native, native_output"
        ) from None


def _sample(folder: Path, inputs: tuple[Tensor, ...]) -> pd.DataFrame:
    found = [folder / name for name in SAMPLES if (folder / name).is_file()]
    if not found:
        raise _fail(
            folder, "no sample rows", f"add {' or '.join(SAMPLES)}: rows of model inputs, one column per feature"
        )
    path = found[0]
    try:
        sample = pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)
    except Exception as exc:  # pandas and pyarrow raise many kinds for a bad file
        raise _fail(
            folder, f"cannot read {path.name} ({type(exc).__name__}: {str(exc)[:200]})", "write it again"
        ) from None
    want = sum(t.width for t in inputs)
    layout = ", ".join(f"{t.width} for {t.describe()}" for t in inputs)
    if sample.shape[1] != want:
        raise _fail(
            folder,
            f"{path.name} has {sample.shape[1]} columns, the inputs take {want} ({layout}, in that order)",
            "give one column per feature",
        )
    if len(sample) == 0:
        raise _fail(folder, f"{path.name} has no rows", "add at least one row")
    if len(sample) > MAX_SAMPLE_ROWS:
        raise _fail(
            folder,
            f"{path.name} has {len(sample):,} rows",
            f"keep at most {MAX_SAMPLE_ROWS:,}: every row is checked one by one on every stack",
        )
    bad = [
        c
        for c in sample.columns
        if not pd.api.types.is_numeric_dtype(sample[c]) or pd.api.types.is_bool_dtype(sample[c])
    ]
    if bad:
        raise _fail(
            folder,
            f"{path.name}: column '{bad[0]}' is not numeric",
            "the inputs are numeric tensors: encode it as numbers",
        )
    missing = sample.columns[sample.isna().any()].tolist()
    if missing:
        raise _fail(folder, f"{path.name}: column '{missing[0]}' has missing values", "fill them as the model expects")
    start = 0
    for t in inputs:
        columns = sample.columns[start : start + t.width]
        start += t.width
        if t.datatype.startswith("INT"):
            values = sample[columns].to_numpy(dtype=np.float64)
            info = np.iinfo(NUMPY[t.datatype])
            if not np.all(values == np.round(values)) or values.min() < info.min or values.max() > info.max:
                raise _fail(
                    folder,
                    f"{path.name}: columns {', '.join(map(str, columns))} feed {t.describe()} "
                    f"but hold values that are not {t.datatype} integers",
                    "give whole numbers in range",
                )
    return sample


def load_pack(folder: Path, reserved: set[str] | frozenset[str] = frozenset()) -> ModelPack:
    """Read and check a pack; raises PackError. `reserved`: names already taken (the built-in models)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PackError(f"model pack {folder}: not a folder; give a folder with {PACK_MODEL} and {SAMPLES[0]}")
    if not (folder / PACK_MODEL).is_file():
        raise _fail(folder, f"no {PACK_MODEL}", f"put the exported model there as {PACK_MODEL}")
    description = _description(folder)
    name = description.name or folder.resolve().name
    if not NAME.match(name):
        raise _fail(
            folder,
            f"the name {name!r} cannot be a URL path segment",
            "name it in model.yaml with letters, digits, _ . -",
        )
    if name in reserved:
        raise _fail(folder, f"the name '{name}' is taken", "give another in model.yaml (name: ...)")
    inputs, outputs = _graph(folder)
    names = [t.name for t in outputs]
    compare = tuple(description.outputs or names)
    unknown = [o for o in compare if o not in names]
    if unknown:
        raise _fail(
            folder,
            f"model.yaml compares output '{unknown[0]}', which the graph lacks",
            f"choose among {', '.join(names)}",
        )
    sample = _sample(folder, inputs)
    native = folder / description.native if description.native else None
    pack = ModelPack(
        name=name,
        label=description.label or name,
        folder=folder,
        inputs=inputs,
        outputs=outputs,
        sample=sample,
        compare=compare,
        tolerance=description.tolerance,
        native=native,
        native_output=description.native_output or (compare[-1] if native else None),
    )
    _check_runs(pack)
    return pack


def _check_runs(pack: ModelPack) -> None:
    """onnxruntime runs the sample (all rows at once where the batch is dynamic), and the native
    model, if any, agrees with it."""
    rows = slice(0, 1) if pack.max_batch == 1 else slice(None)
    try:
        got = pack.expected(rows)
    except Exception as exc:  # onnxruntime's errors are untyped
        raise _fail(
            pack.folder,
            f"onnxruntime cannot run it on the sample ({str(exc)[:300]})",
            "check the sample's columns against the inputs",
        ) from None
    if pack.native is None:
        return
    if not pack.native.is_file():
        raise _fail(
            pack.folder,
            f"model.yaml names the native model {pack.native.name}, which is missing",
            "add it or drop `native`",
        )
    import lightgbm as lgb

    try:
        booster = lgb.Booster(model_file=str(pack.native))
    except lgb.basic.LightGBMError as exc:
        raise _fail(
            pack.folder, f"{pack.native.name} is not a LightGBM text model ({exc})", "save it with booster.save_model"
        ) from None
    values = pack.sample.iloc[rows].to_numpy(dtype=np.float64)
    native = np.asarray(booster.predict(values, num_threads=1), dtype=np.float64)
    onnx = np.asarray(got[str(pack.native_output)], dtype=np.float64).reshape(len(native), -1)
    native = native.reshape(len(native), -1)
    if onnx.shape[1] == 2 and native.shape[1] == 1:  # a binary classifier: ONNX gives both classes
        onnx = onnx[:, 1:]
    if onnx.shape != native.shape:
        raise _fail(
            pack.folder,
            f"the native model gives {native.shape[1]} values a row, output '{pack.native_output}' {onnx.shape[1]}",
            "name the output to compare in native_output",
        )
    worst = float(np.max(np.abs(onnx - native) / np.maximum(1.0, np.abs(native))))
    if worst > pack.tolerance:
        raise _fail(
            pack.folder,
            f"the ONNX model differs from the native model by up to {worst:.3g} (tolerance {pack.tolerance:g})",
            "export it again, or raise tolerance in model.yaml if the difference is expected",
        )


def install(pack: ModelPack, models_dir: Path) -> Path:
    """Copy the pack into the run's models folder, `packs/<name>/`, where the servers find it."""
    target = models_dir / PACKS_DIR / pack.name
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(pack.folder, target)
    if pack.folder.resolve().name != pack.name and not (target / DESCRIPTION).is_file():
        (target / DESCRIPTION).write_text(yaml.safe_dump({"name": pack.name}))
    return target


def installed(models_dir: Path, name: str) -> ModelPack | None:
    """The pack of that name in the run's models folder, if there is one."""
    folder = models_dir / PACKS_DIR / name
    return load_pack(folder) if (folder / PACK_MODEL).is_file() else None
