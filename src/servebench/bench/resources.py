"""What a server process costs: memory and CPU time over its whole process tree (gunicorn's
worker is a child of its master, for instance)."""

from __future__ import annotations

from pathlib import Path

import psutil


def _tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def rss_bytes(pid: int) -> int:
    return sum(p.memory_info().rss for p in _tree(pid))


def peak_rss_bytes(pid: int) -> int:
    """Sum over the tree of each process's high-water mark (VmHWM)."""
    total = 0
    for process in _tree(pid):
        try:
            status = Path(f"/proc/{process.pid}/status").read_text()
        except OSError:
            total += process.memory_info().rss
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                total += int(line.split()[1]) * 1024
                break
    return total


def cpu_seconds(pid: int) -> float:
    total = 0.0
    for process in _tree(pid):
        times = process.cpu_times()
        total += times.user + times.system
    return total
