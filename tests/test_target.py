"""Notebook 04 opened on its own: the kernel's CPU affinity is only borrowed while the Python
client measures, and running the cell again reuses the server it started."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from servebench.bench import target as target_module
from servebench.bench.target import Target, attach_or_start, on_client_cores


def test_the_kernel_keeps_its_affinity() -> None:
    before = os.sched_getaffinity(0)
    cpu = str(min(before))
    t = Target("f", "m", "http://x", None, None, None, cpu)
    with on_client_cores(t) as said:
        assert os.sched_getaffinity(0) == {int(cpu)} and f"client on cores {cpu}" in said
    assert os.sched_getaffinity(0) == before
    with pytest.raises(RuntimeError), on_client_cores(t):
        raise RuntimeError("a failing measurement")
    assert os.sched_getaffinity(0) == before


def test_running_the_cell_again_reuses_its_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    started: list[str] = []

    def fake_start(framework: str, out: Path) -> dict[str, Any]:
        started.append(framework)
        return {"base_url": "http://127.0.0.1:1", "pid": os.getpid(), "startup_seconds": 0.5, "cpus": ""}

    monkeypatch.setattr(target_module, "start_server", fake_start)
    monkeypatch.setattr(target_module, "_STARTED", {})
    monkeypatch.setattr(target_module.atexit, "register", lambda *a: None)
    first = attach_or_start("fastapi", "m", None, None, None, None, tmp_path)
    again = attach_or_start("fastapi", "m", None, None, None, None, tmp_path)
    assert started == ["fastapi"] and first == again and first.local


def test_a_server_elsewhere_has_no_process_here(tmp_path: Path) -> None:
    t = attach_or_start("x", "m", "http://10.0.0.5:8000/", None, None, None, tmp_path)
    assert t.base_url == "http://10.0.0.5:8000" and not t.local
