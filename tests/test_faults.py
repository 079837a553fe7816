"""Faults in the harness: a server killed mid-benchmark, a busy port, missing or corrupt model
artifacts, and run_all.sh interrupted; each is reported clearly and leaves nothing running."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from servebench import registry
from servebench.config import Combination, load_profile
from servebench.launch import cores_refusal
from servebench.report import tables
from servebench.report.data import load as load_report
from servebench.run import benchmark
from servebench.servers import ServerError, alive, free_port, start_server, stop_server
from servebench.settings import run_settings

from .conftest import ALL_SERVERS, ROOT

pytestmark = pytest.mark.servers


def private_out(artifacts: dict[str, Any], tmp_path: Path) -> Path:
    """An outputs folder of its own, with a copy of the test models."""
    out = tmp_path / "out"
    shutil.copytree(artifacts["models"], out / "models")
    return out


def fast_profile() -> dict[str, Any]:
    profile = load_profile(ROOT / "params" / "quick.yaml")
    profile["notebooks"]["04_benchmark"].update(
        n_requests=50,
        warmup=10,
        concurrency=[1, 4],
        load_duration_s=1,
        native_window_s=0.2,
        native_warmup=10,
        windows=1,
        ladder_start=500,
        ladder_max_rate=1000,
        ladder_step_s=1,
        ladder_refine=0,
        bootstrap_resamples=50,
    )
    return profile


def test_server_killed_mid_benchmark_is_reported_and_the_run_goes_on(artifacts: dict[str, Any], tmp_path: Path) -> None:
    out = private_out(artifacts, tmp_path)
    ready = out / "run" / "fastapi.json"  # the launcher's record, written once /health answers

    def kill_when_up() -> None:
        deadline = time.time() + 120
        while time.time() < deadline:
            if ready.is_file():
                time.sleep(3)  # into the benchmark notebook
                os.kill(json.loads(ready.read_text())["pid"], signal.SIGKILL)
                return
            time.sleep(0.1)

    killer = threading.Thread(target=kill_when_up, daemon=True)
    killer.start()
    records = benchmark(
        fast_profile(),
        run_settings(fast_profile()),
        out,
        [Combination("fastapi", "pytorch"), Combination("rust-tract", "pytorch_onnx")],
    )
    killer.join()
    assert records[0]["status"] == "failed" and "server died" in records[0]["reason"]
    assert records[1]["status"] == "ok", records[1]
    assert (out / "results" / "rust-tract__pytorch_onnx.observations.json").is_file()


def test_busy_port_is_a_clear_error(artifacts: dict[str, Any], tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        run = subprocess.run(
            [str(ROOT / "servers" / "start.sh"), "rust-tract", str(port)],
            capture_output=True,
            text=True,
            env={**os.environ, "SERVEBENCH_OUT": str(tmp_path), "SERVEBENCH_MODELS_DIR": str(artifacts["models"])},
        )
    assert run.returncode != 0 and f"port {port}" in run.stderr and "in use" in run.stderr


@pytest.mark.parametrize("framework", ALL_SERVERS)
@pytest.mark.parametrize("damage", ["missing", "corrupt"])
@pytest.mark.parametrize("file", ["lightgbm.onnx", "preprocess.json"])
def test_bad_artifact_stops_the_server_at_start_up(
    artifacts: dict[str, Any], tmp_path: Path, framework: str, damage: str, file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if why := cores_refusal(registry.server(framework)):
        pytest.skip(why)
    if file == "preprocess.json" and "record" not in registry.server(framework).apis:
        pytest.skip(f"{framework} serves the Open Inference Protocol alone and reads no preprocessing")
    out = private_out(artifacts, tmp_path)
    target = out / "models" / file
    if damage == "missing":
        target.unlink()
    else:
        target.write_bytes(b"\x00not a model\xff" * 10)
    monkeypatch.setenv("SERVEBENCH_MODELS_DIR", str(out / "models"))
    with pytest.raises(ServerError) as err:
        start_server(framework, out)
    assert file in str(err.value)
    assert not (out / "run" / f"{framework}.pid").exists()


def processes_mentioning(text: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                environ = (entry / "environ").read_bytes()
            except OSError:
                continue
            if text in cmdline or text.encode() in environ:
                found.append(f"{entry.name}: {cmdline[:120]}")
    return found


@pytest.mark.parametrize("how", ["SIGINT to the process group (Ctrl-C)", "SIGTERM to run_all.sh"])
def test_interrupted_run_all_leaves_nothing_behind(artifacts: dict[str, Any], tmp_path: Path, how: str) -> None:
    out = private_out(artifacts, tmp_path)
    proc = subprocess.Popen(
        [str(ROOT / "run_all.sh"), "--quick", "--skip-train", "--frameworks", "fastapi,rust-ort", "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    ready = out / "run" / "fastapi.json"
    deadline = time.time() + 300
    while not ready.is_file() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert ready.is_file(), "the server never started"
    server_pid = json.loads(ready.read_text())["pid"]
    time.sleep(4)  # into the benchmark notebook
    if how.startswith("SIGINT"):
        os.killpg(proc.pid, signal.SIGINT)
    else:
        proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0, output
    # An interruption is not a crash: no traceback from the run or the notebook's kernel.
    for noise in ("Traceback", "ZMQError", "ERROR |"):
        assert noise not in output, output
    time.sleep(1)
    assert not alive(server_pid)
    assert processes_mentioning(str(out)) == []


def test_stop_sh_leaves_no_process(artifacts: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = private_out(artifacts, tmp_path)
    monkeypatch.setenv("SERVEBENCH_MODELS_DIR", str(out / "models"))
    info = start_server("flask", out, port=free_port())
    assert httpx.get(f"{info['base_url']}/health").status_code == 200
    stop_server("flask", out)
    assert not alive(int(info["pid"])) and processes_mentioning(str(out)) == []


def test_a_wrong_endpoint_is_marked_incorrect_and_not_benchmarked(artifacts: dict[str, Any], tmp_path: Path) -> None:
    """Never a wrong number: when an endpoint disagrees with the reference, it is not timed and
    the report shows it as INCORRECT with its largest difference."""
    out = private_out(artifacts, tmp_path)
    reference = out / "models" / "reference.jsonl"
    rows = [json.loads(line) for line in reference.read_text().splitlines()]
    for row in rows[:5]:
        row["pytorch_onnx"] = min(1.0, row["pytorch_onnx"] + 0.02)
    reference.write_text("".join(json.dumps(row) + "\n" for row in rows))

    (record,) = benchmark(
        fast_profile(), run_settings(fast_profile()), out, [Combination("rust-tract", "pytorch_onnx")]
    )
    assert record["status"] == "incorrect" and "largest difference 0.02" in record["reason"]
    summary = json.loads((out / "results" / "rust-tract__pytorch_onnx.observations.json").read_text())
    assert summary["status"] == "incorrect" and summary["windows"]["predict"] == [] and summary["load"] == []
    assert not (out / "results" / "rust-tract__pytorch_onnx.sequential.parquet").exists()

    data = load_report(out)
    parity = tables.parity_table(data)
    assert parity["Status"].tolist() == ["INCORRECT"]
    assert parity["Largest |Δp|"].iloc[0] == pytest.approx(0.02, abs=1e-6)
    assert "color: #b00020" in tables.highlight_incorrect(parity).to_html()
