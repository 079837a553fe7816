"""The CPU idle hold: the PM QoS request is written while the block runs and released after, its
state reaches the environment record, and a machine that refuses it is recorded, not fatal."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from servebench.bench import environment
from servebench.bench.idle import ENV, HELD, shallow_idle


def test_the_request_is_zero_and_held_only_inside_the_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    device = tmp_path / "cpu_dma_latency"
    device.write_bytes(b"")
    before = set(os.listdir("/proc/self/fd"))
    with shallow_idle(device=device) as state:
        assert state == HELD
        assert device.read_bytes() == b"\0\0\0\0"
        assert len(set(os.listdir("/proc/self/fd")) - before) == 1  # the request lasts while open
        assert environment.describe()["cpu_idle"] == HELD
    assert set(os.listdir("/proc/self/fd")) == before
    assert ENV not in os.environ
    assert environment.describe()["cpu_idle"].startswith("not held")


def test_a_refused_request_is_recorded_and_the_run_goes_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, "an outer state")
    with shallow_idle(device=tmp_path / "missing" / "cpu_dma_latency") as state:
        assert state.startswith("not held (") and "needs root" in state
        assert os.environ[ENV] == state
    assert os.environ[ENV] == "an outer state"


def test_the_profile_can_turn_it_off(tmp_path: Path) -> None:
    device = tmp_path / "cpu_dma_latency"
    device.write_bytes(b"")
    with shallow_idle(enabled=False, device=device) as state:
        assert "hold_cpu_idle: false" in state
    assert device.read_bytes() == b""
