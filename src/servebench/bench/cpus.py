"""Which cores the server and the client run on: the server pinned to its core(s), every
client (the generators, the Python client) on the rest, so that neither measures the other."""

from __future__ import annotations

import os


def client_cpus(server_cpus: str | None) -> str | None:
    """The cores the client may use: all but the server's, when there are two or more."""
    available = sorted(os.sched_getaffinity(0))
    taken = parse_cpus(server_cpus) if server_cpus else set()
    free = [c for c in available if c not in taken]
    if len(available) < 2 or not free:
        return None
    return ",".join(map(str, free))


def parse_cpus(text: str) -> set[int]:
    cpus: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if "-" in part:
            low, high = part.split("-")
            cpus.update(range(int(low), int(high) + 1))
        elif part:
            cpus.add(int(part))
    return cpus
