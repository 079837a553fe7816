"""Servers kept up, idle, across the trials of a run: one start each, except a stack given its own
slot (started and stopped for each turn), a server that died (started again), and memory running
short (the longest unused stopped before another starts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from servebench import registry, servers
from servebench.servers import ServerPool


class Fakes:
    """A launcher that records starts and stops; `dead` holds the pids that have died."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.dead: set[int] = set()
        self.pids = 0

    def start(self, framework: str, _out: Path) -> dict[str, Any]:
        self.events.append(f"start {framework}")
        self.pids += 1
        return {"pid": self.pids, "base_url": f"http://127.0.0.1:{self.pids}"}

    def stop(self, framework: str, _out: Path) -> None:
        self.events.append(f"stop {framework}")


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> Fakes:
    made = Fakes()
    monkeypatch.setattr(servers, "alive", lambda pid: pid not in made.dead)
    return made


def pool(fakes: Fakes, tmp_path: Path, own: tuple[str, ...] = (), **kwargs: Any) -> ServerPool:
    return ServerPool(tmp_path, lambda f: f in own, start=fakes.start, stop=fakes.stop, **kwargs)


def test_servers_stay_up_across_trials_and_a_stack_with_its_own_slot_does_not(fakes: Fakes, tmp_path: Path) -> None:
    with pool(fakes, tmp_path, own=("ray",)) as up:
        for _trial in range(3):
            for framework in ("a", "ray", "b"):
                with up.use(framework) as server:
                    assert server["pid"]
    assert fakes.events.count("start a") == 1 and fakes.events.count("start b") == 1
    assert fakes.events.count("start ray") == 3 and fakes.events.count("stop ray") == 3
    # every server is down at the end
    assert fakes.events[-2:] == ["stop a", "stop b"]
    assert up.starts == {"a": 1, "ray": 3, "b": 1}


def test_a_server_that_died_is_started_again(fakes: Fakes, tmp_path: Path) -> None:
    with pool(fakes, tmp_path) as up:
        with up.use("a") as first:
            pass
        fakes.dead.add(first["pid"])
        with up.use("a") as second:
            assert second["pid"] != first["pid"]
    assert fakes.events == ["start a", "stop a", "start a", "stop a"]


def test_memory_short_stops_the_longest_unused_before_another_starts(fakes: Fakes, tmp_path: Path) -> None:
    free = [10, 1]  # bytes available at each check before a start: short before the third
    with pool(fakes, tmp_path, reserve=5, memory=lambda: free.pop(0) if free else 10) as up:
        for framework in ("a", "b", "a", "c"):
            with up.use(framework):
                pass
    assert fakes.events[:5] == ["start a", "start b", "stop b", "start c", "stop a"]


def test_only_stacks_measured_to_disturb_the_others_have_their_own_slot() -> None:
    slotted = {s.id for s in registry.servers().values() if s.own_slot}
    assert {"ray-serve", "ray-serve-batching", "ray-serve-nginx", "litserve-batching"} <= slotted
    assert not slotted & {"fastapi", "rust-ort", "litserve", "bentoml-batching", "mlserver-batching"}


def test_a_failed_start_is_tried_once_more_before_it_fails_the_server(fakes: Fakes, tmp_path: Path) -> None:
    failures = {"a": 1, "b": 2}

    def start(framework: str, out: Path) -> dict[str, Any]:
        if failures.get(framework, 0) > 0:
            failures[framework] -= 1
            fakes.events.append(f"failed {framework}")
            raise servers.ServerError(f"{framework} did not start")
        return fakes.start(framework, out)

    with ServerPool(tmp_path, lambda _f: False, start=start, stop=fakes.stop) as up:
        with up.use("a") as server:
            assert server["pid"]
        with pytest.raises(servers.ServerError), up.use("b"):
            pass
    assert fakes.events == ["failed a", "start a", "failed b", "failed b", "stop a"]


def test_a_port_answering_no_http_is_not_a_healthy_server() -> None:
    import socket
    import threading

    from servebench import launch

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def answer_in_http2_frames() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(1024)
            conn.sendall(b"\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x04\x00\x40\x00\x00\n")

    thread = threading.Thread(target=answer_in_http2_frames, daemon=True)
    thread.start()
    try:
        assert launch._healthy(f"http://127.0.0.1:{listener.getsockname()[1]}/health") is False
    finally:
        thread.join(timeout=5)
        listener.close()
