"""Every CPU held at its shallowest idle state while the benchmarks run.

A core with nothing to do sleeps, and the request that arrives next pays its wake-up: on bare
metal the exit latency of a deep C-state (tens to hundreds of microseconds), in a virtual machine
a halt that hands the vCPU back to the host (here up to milliseconds, varying with the host's
load). A server that answers in 50 µs then measures mostly how its core was woken, and two runs
disagree by whatever the host was doing. Writing 0 to /dev/cpu_dma_latency — a PM QoS request,
the mechanism of tuned's latency-performance profile and of cyclictest — keeps idle cores polling
for as long as the file stays open; closing it (or the process ending) restores the default.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PM_QOS = Path("/dev/cpu_dma_latency")
# What the notebooks record in their environment (servebench.bench.environment).
ENV = "SERVEBENCH_CPU_IDLE"
HELD = "held at 0 µs wake-up latency (/dev/cpu_dma_latency) while measuring"


@contextmanager
def shallow_idle(enabled: bool = True, device: Path = PM_QOS) -> Iterator[str]:
    """Holds the request for the duration of the block and yields what it did, which also goes to
    $SERVEBENCH_CPU_IDLE for the processes started inside (the notebooks' kernels)."""
    if not enabled:
        state, fd = "not held (hold_cpu_idle: false in the profile): the OS's idle states", None
    else:
        try:
            fd = os.open(device, os.O_WRONLY)
            os.write(fd, struct.pack("=i", 0))
            state = HELD
        except OSError as exc:
            fd = None
            state = f"not held ({device}: {exc.strerror}; it needs root): the OS's idle states"
    previous = os.environ.get(ENV)
    os.environ[ENV] = state
    try:
        yield state
    finally:
        if fd is not None:
            os.close(fd)
        if previous is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = previous


def recorded_state() -> str:
    return os.environ.get(ENV) or "not held (measured outside run_all.sh): the OS's idle states"
