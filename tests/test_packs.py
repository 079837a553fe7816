"""Model packs: the shapes they may have, and every pack that cannot be served refused with a
message naming the problem and the fix, before any server starts."""

from __future__ import annotations

import shutil
from pathlib import Path

import lightgbm as lgb
import numpy as np
import onnx
import onnxmltools
import pandas as pd
import pytest
from onnx import TensorProto, helper
from onnxmltools.convert.common.data_types import FloatTensorType

from servebench import cli
from servebench.bench.client import payloads
from servebench.bench.pack_requests import bodies, difference
from servebench.builtin_packs import build, builtin_packs
from servebench.example_packs import write_example_packs
from servebench.packs import PackError, load_pack
from servebench.registry import RegistryError


@pytest.fixture(scope="module")
def examples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_example_packs(tmp_path_factory.mktemp("models"))


def copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_the_example_packs_load_with_the_graphs_shapes(examples: dict[str, Path]) -> None:
    two = load_pack(examples["two_inputs"])
    assert [t.describe() for t in two.inputs] == ["a FP32 [N, 3]", "b INT64 [N, 2]"]
    assert [t.describe() for t in two.outputs] == ["score FP32 [N, 1]", "winner INT64 [N]"]
    feeds = two.feeds([0, 1])
    assert feeds["a"].dtype == np.float32 and feeds["a"].shape == (2, 3)
    assert feeds["b"].dtype == np.int64 and feeds["b"].shape == (2, 2)
    request = two.v2_request([3])
    assert [i["shape"] for i in request["inputs"]] == [[1, 3], [1, 2]]
    assert request["inputs"][1]["data"] == two.sample.iloc[3, 3:].astype(int).tolist()
    fixed = load_pack(examples["fixed"])
    assert fixed.max_batch == 1 and two.max_batch is None
    assert load_pack(examples["regression"]).inputs[0].datatype == "FP64"
    assert [t.shape for t in load_pack(examples["multiclass"]).outputs] == [(-1, 3), (-1,)]


def test_bodies_cycle_through_the_sample_a_batch_at_a_time(examples: dict[str, Path]) -> None:
    pack = load_pack(examples["multiclass"])
    assert len(bodies(pack, 1)) == pack.rows
    three = bodies(pack, 3)
    assert len(three) == 3 and b'"shape":[3,8]' in three[-1]


def test_difference_is_relative_and_infinite_for_a_missing_or_misshapen_output() -> None:
    want = {"y": np.array([[1000.0], [0.5]])}
    answer = {"outputs": [{"name": "y", "shape": [2, 1], "data": [1000.1, 0.5]}]}
    assert difference(answer, want) == pytest.approx(1e-4)
    assert difference({"outputs": []}, want) == float("inf")
    assert difference({"outputs": [{"name": "y", "shape": [1, 2], "data": [1000.0, 0.5]}]}, want) == float("inf")


def test_a_lightgbm_pack_is_checked_against_its_native_model(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5))
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    booster = lgb.train({"objective": "binary", "verbose": -1, "num_threads": 1}, lgb.Dataset(x, y), 20)
    onnx_model = onnxmltools.convert_lightgbm(
        booster, initial_types=[("input", FloatTensorType([None, 5]))], zipmap=False, target_opset=15
    )
    folder = tmp_path / "gbm"
    folder.mkdir()
    onnx.save(onnx_model, folder / "model.onnx")
    booster.save_model(str(folder / "model.txt"))
    # float32 values, so that the native model sees what the ONNX one does
    pd.DataFrame(x[:20].astype(np.float32), columns=[f"f{i}" for i in range(5)]).to_csv(
        folder / "sample.csv", index=False
    )
    (folder / "model.yaml").write_text("native: model.txt\nnative_output: probabilities\ntolerance: 1.0e-5\n")
    pack = load_pack(folder)
    assert pack.native_output == "probabilities" and pack.name == "gbm"
    # a native model that is not this one is refused
    other = lgb.train({"objective": "binary", "verbose": -1, "num_threads": 1}, lgb.Dataset(x, 1 - y), 20)
    other.save_model(str(folder / "model.txt"))
    with pytest.raises(PackError, match="differs from the native model"):
        load_pack(folder)


def zipmap_classifier(folder: Path) -> None:
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    x = np.random.default_rng(1).normal(size=(50, 3)).astype(np.float32)
    model = LogisticRegression().fit(x, (x[:, 0] > 0).astype(int))
    onnx.save(to_onnx(model, x[:1]), folder / "model.onnx")
    pd.DataFrame(x[:5], columns=["p", "q", "r"]).to_csv(folder / "sample.csv", index=False)


def string_input(folder: Path) -> None:
    node = helper.make_node("Identity", ["city"], ["same"])
    graph = helper.make_graph(
        [node],
        "s",
        [helper.make_tensor_value_info("city", TensorProto.STRING, ["N", 1])],
        [helper.make_tensor_value_info("same", TensorProto.STRING, ["N", 1])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), folder / "model.onnx")
    pd.DataFrame({"city": [1.0]}).to_csv(folder / "sample.csv", index=False)


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (zipmap_classifier, r"output 'output_probability' is a (sequence|map).*zipmap=False"),
        (string_input, r"input 'city' is a string tensor.*encode it as numbers"),
        (lambda f: (f / "model.onnx").write_bytes(b"not a model"), r"not a valid ONNX model.*export it again"),
        (lambda f: (f / "sample.csv").unlink(), r"no sample rows; add sample.csv or sample.parquet"),
        (lambda f: (f / "model.onnx").unlink(), r"no model.onnx"),
        (
            lambda f: pd.read_csv(f / "sample.csv").iloc[:, :4].to_csv(f / "sample.csv", index=False),
            r"4 columns, the inputs take 5 \(3 for a FP32 \[N, 3\], 2 for b INT64 \[N, 2\]",
        ),
        (
            lambda f: pd.read_csv(f / "sample.csv").assign(b0="x").to_csv(f / "sample.csv", index=False),
            r"column 'b0' is not numeric",
        ),
        (
            lambda f: pd.read_csv(f / "sample.csv").assign(b1=0.5).to_csv(f / "sample.csv", index=False),
            r"columns b0, b1 feed b INT64 \[N, 2\] but hold values that are not INT64 integers",
        ),
        (
            lambda f: pd.read_csv(f / "sample.csv").assign(a1=np.nan).to_csv(f / "sample.csv", index=False),
            r"column 'a1' has missing values",
        ),
        (lambda f: (f / "model.yaml").write_text("tolerence: 0.1\n"), r"model.yaml: tolerence: Extra inputs"),
        (lambda f: (f / "model.yaml").write_text("outputs: [nope]\n"), r"compares output 'nope'.*score, winner"),
        (lambda f: (f / "model.yaml").write_text("name: pytorch_onnx\n"), r"the name 'pytorch_onnx' is taken"),
        (lambda f: (f / "model.yaml").write_text("name: a/b\n"), r"cannot be a URL path segment"),
        (lambda f: (f / "model.yaml").write_text("native: gone.txt\n"), r"gone.txt, which is missing"),
    ],
)
def test_a_pack_that_cannot_be_served_is_refused_with_its_fix(
    make: object, expected: str, examples: dict[str, Path], tmp_path: Path
) -> None:
    folder = copy(examples["two_inputs"], tmp_path / "pack")
    make(folder)  # type: ignore[operator]
    with pytest.raises(PackError, match=expected):
        load_pack(folder, reserved=frozenset({"pytorch_onnx"}))


def test_a_refused_pack_stops_nothing_else_and_fails_the_run(
    examples: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = copy(examples["two_inputs"], tmp_path / "bad")
    (bad / "sample.csv").unlink()
    # --models naming only the refused pack: nothing to benchmark, no server started, exit 1
    code = cli.main(["--quick", "--model-pack", str(bad), "--models", "bad", "--out", str(tmp_path / "out")])
    said = capsys.readouterr().out
    assert code == 1
    assert "model pack" in said and "no sample rows" in said and "every model pack was refused" in said
    assert not (tmp_path / "out" / "run").exists()


def test_a_builtin_pack_is_an_entry_of_the_model_list(tmp_path: Path) -> None:
    """Adding a trained model is data: an entry names a bundled data set and the network's width."""
    listing = tmp_path / "models.yaml"
    listing.write_text(
        "models: []\npacks:\n"
        "  - {name: wine, label: Wine MLP, dataset: wine, hidden: [8], epochs: 2}\n"
        "  - {name: diabetes, label: Diabetes MLP, dataset: diabetes, hidden: [4], epochs: 1}\n"
    )
    made = {spec.name: load_pack(build(spec, tmp_path / "models")) for spec in builtin_packs(listing)}
    assert [t.describe() for t in made["wine"].outputs] == ["probabilities FP32 [N, 3]"]
    assert [t.describe() for t in made["diabetes"].outputs] == ["prediction FP32 [N, 1]"]
    assert made["wine"].label == "Wine MLP" and made["diabetes"].inputs[0].shape == (-1, 10)
    listing.write_text("packs:\n  - {name: x, label: X, dataset: no_such_set, hidden: [2]}\n")
    with pytest.raises(RegistryError, match="no bundled scikit-learn data set 'no_such_set'"):
        build(builtin_packs(listing)[0], tmp_path)
    listing.write_text("packs:\n  - {name: x, label: X, dataset: wine}\n")
    with pytest.raises(RegistryError, match="hidden"):
        builtin_packs(listing)


def test_record_api_bodies_carry_batches_of_passengers() -> None:
    rows = [{"Pclass": 1, "Sex": "male", "Age": 30.0, "SibSp": 0, "Parch": 0, "Fare": float(i)} for i in range(5)]
    single, batched = payloads(rows), payloads(rows, 2)
    assert len(single) == 5 and b"instances" not in single[0]
    assert len(batched) == 3 and batched[2].count(b'"Fare"') == 2  # the last wraps around to the first row
