"""The transport, attacked on raw sockets the way a hostile client would, against every production
server: slow headers, slow bodies, an idle-connection flood, resets mid-body, oversized request
heads, and the HTTP/1.1 corners (pipelining, `Expect: 100-continue`, HTTP/1.0, chunked bodies,
`Content-Length` with `Transfer-Encoding`, a very long URL). Issue 11.

After each attack, and while it is still going on for the slow and idle ones, a fresh valid
request on a new connection is answered 200 within 2 s, the server process is alive, and its log
has grown by at most a handful of lines plus one per client dropped, with no traceback. The
development server (`flask-dev`, `production: false`) is exempt. Every socket has a timeout and is
closed in `finally`; each attack is bounded in time (about 20 s per server for the whole file).
"""

from __future__ import annotations

import json
import resource
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil
import pytest

from .conftest import Server, ServerPool, valid_passenger

# The record API: a stack serving the Open Inference Protocol alone is passed by (conftest).
pytestmark = [pytest.mark.servers, pytest.mark.record_api]

PREDICT = "/predict/pytorch_onnx"
OK = json.dumps(valid_passenger()).encode()
OTHER = json.dumps({**valid_passenger(), "Pclass": 1, "Sex": "female", "Age": 30.0}).encode()
MIB = 1 << 20
BODY_LIMIT = MIB

FRESH_DEADLINE_S = 2.0  # a fresh request is answered within this, whatever the attack
HANDFUL = 5  # log lines an attack may add besides one per client dropped
RSS_SLACK_MIB = 8.0  # growth of the server's memory allowed across an oversized request head
SETTLE_S = 0.5  # time for the server to notice closed sockets and log what it logs

SLOW_CLIENTS = 256
TRICKLE_INTERVAL_S = 0.5  # one byte per slow client per interval
IDLE_CLIENTS = 1000
KEEPALIVE_CLIENTS = 64
RESETS = 500  # all at once: one such burst held Ray Serve's proxy for 1.6-1.8 s, 1,000 for 3.8 s
OPEN_FILES = 4096  # this process holds IDLE_CLIENTS + KEEPALIVE_CLIENTS sockets at once


def raise_open_file_limit(wanted: int = OPEN_FILES) -> None:
    """Raise this process's open-file limit for the idle flood (root may raise the hard limit too).
    Done at import, before any server starts, so that servers started by this session may open as
    many (the launcher raises theirs too)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return
    if hard != resource.RLIM_INFINITY and hard < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
            return
        except (ValueError, OSError):
            wanted = hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


raise_open_file_limit()


# --- raw HTTP/1.1 -----------------------------------------------------------------------------


def address(server: Server) -> tuple[str, int]:
    parts = urlsplit(server.base_url)
    assert parts.hostname and parts.port
    return parts.hostname, parts.port


def request_head(
    method: str = "POST",
    target: str = PREDICT,
    *,
    version: str = "HTTP/1.1",
    length: int | None = None,
    headers: tuple[tuple[str, str], ...] = (),
    content_type: str | None = "application/json",
) -> bytes:
    lines = [f"{method} {target} {version}", "Host: 127.0.0.1"]
    if content_type:
        lines.append(f"Content-Type: {content_type}")
    if length is not None:
        lines.append(f"Content-Length: {length}")
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def predict_request(body: bytes = OK, **kwargs: Any) -> bytes:
    return request_head(length=len(body), **kwargs) + body


def chunked(body: bytes, size: int) -> bytes:
    parts = [b"%x\r\n%s\r\n" % (len(body[i : i + size]), body[i : i + size]) for i in range(0, len(body), size)]
    return b"".join(parts) + b"0\r\n\r\n"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Connection:
    """One client connection on a blocking socket; every read has a deadline."""

    def __init__(self, addr: tuple[str, int], timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(addr, timeout=timeout)
        self.buf = b""

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes, timeout: float = 10.0) -> bool:
        """All of `data`; False when the server closed or reset the connection first."""
        self.sock.settimeout(timeout)
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            return False
        return True

    def _fill(self, deadline: float) -> bool:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no complete reply before the deadline")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(1 << 16)
        except ConnectionResetError:
            return False
        except TimeoutError:
            raise TimeoutError("no complete reply before the deadline") from None
        self.buf += data
        return bool(data)

    def _take(self, n: int, deadline: float) -> bytes:
        while len(self.buf) < n:
            if not self._fill(deadline):
                raise ConnectionError("closed mid-body")
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def _line(self, deadline: float) -> bytes:
        while b"\r\n" not in self.buf:
            if not self._fill(deadline):
                raise ConnectionError("closed mid-chunk")
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def reply(self, timeout: float = 5.0) -> Reply | None:
        """The next reply (an interim 1xx included), or None if the server closed the connection
        before one began. TimeoutError when nothing complete arrives within `timeout`."""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.buf:
            if not self._fill(deadline):
                if self.buf:
                    raise ConnectionError(f"closed mid-head: {self.buf[:80]!r}")
                return None
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if status < 200 or status in (204, 304):
            return Reply(status, headers, b"")
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = b""
            while size := int(self._line(deadline).split(b";")[0], 16):
                body += self._take(size, deadline)
                self._take(2, deadline)
            while self._line(deadline):  # trailers
                pass
        elif "content-length" in headers:
            body = self._take(int(headers["content-length"]), deadline)
        else:  # delimited by the close
            while self._fill(deadline):
                pass
            body, self.buf = self.buf, b""
        return Reply(status, headers, body)

    def closed_by_server(self, timeout: float) -> bool:
        """Whether the server closes (or resets) the connection within `timeout`, sending nothing more."""
        deadline = time.monotonic() + timeout
        try:
            while self._fill(deadline):
                pass
        except TimeoutError:
            return False
        return True

    def reset(self) -> None:
        """An abrupt close: SO_LINGER 0 makes close() send a RST instead of a FIN."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


@contextmanager
def connection(server: Server, timeout: float = 5.0) -> Iterator[Connection]:
    conn = Connection(address(server), timeout)
    try:
        yield conn
    finally:
        conn.close()


def exchange(server: Server, data: bytes, timeout: float = 10.0) -> Reply | None:
    """Send `data` on a new connection and read one reply: None when the server closed the
    connection without one (possibly before all of `data` was sent)."""
    with connection(server) as conn:
        sent = conn.send(data, timeout)
        try:
            return conn.reply(timeout)
        except ConnectionError:
            if sent:
                raise
            return None


def fresh_request(server: Server) -> tuple[int | None, float]:
    """A valid prediction on a new connection: (status or None, seconds), within FRESH_DEADLINE_S."""
    start = time.monotonic()
    conn = None
    try:
        conn = Connection(address(server), timeout=FRESH_DEADLINE_S)
        conn.send(predict_request(), FRESH_DEADLINE_S)
        reply = conn.reply(max(0.0, FRESH_DEADLINE_S - (time.monotonic() - start)))
        return (reply.status if reply else None), time.monotonic() - start
    except (OSError, ConnectionError):
        return None, time.monotonic() - start
    finally:
        if conn is not None:
            conn.close()


# --- the server under attack ------------------------------------------------------------------


def tree(pid: int) -> list[psutil.Process]:
    proc = psutil.Process(pid)
    return [proc, *proc.children(recursive=True)]


def rss_mib(pid: int) -> float:
    total = 0
    for proc in tree(pid):
        with suppress(psutil.NoSuchProcess):
            total += proc.memory_info().rss
    return total / MIB


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


class Watch:
    """What an attack does to a server: fresh requests during and after it, its process, its log
    and its memory."""

    def __init__(self, server: Server, attack: str) -> None:
        self.server, self.attack = server, attack
        self.log = Path(server.info["log"])
        self.log_start = self.log.stat().st_size
        self.rss_before = rss_mib(server.pid)
        self.fresh_s: list[float] = []

    def fresh(self, when: str) -> None:
        status, seconds = fresh_request(self.server)
        self.fresh_s.append(seconds)
        assert status == 200 and seconds <= FRESH_DEADLINE_S, (
            f"{self.server.framework}, {self.attack}, {when}: a fresh request got {status} after {seconds:.2f} s"
        )

    def new_log(self) -> str:
        with self.log.open("rb") as f:
            f.seek(self.log_start)
            return f.read().decode(errors="replace")

    def finish(self, dropped: int = 0, note: str = "") -> float:
        """After the attack: the process is alive, a fresh request is answered, and the log has
        grown by at most HANDFUL + `dropped` lines, none of them a traceback. Returns the growth
        of the server's memory in MiB."""
        time.sleep(SETTLE_S)
        assert alive(self.server.pid), f"{self.server.framework} died under {self.attack}"
        self.fresh("after the attack")
        rss_after = rss_mib(self.server.pid)
        text = self.new_log()
        lines = text.splitlines()
        fresh_ms = max(self.fresh_s) * 1000
        print(
            f"[transport] {self.server.framework:<11} {self.attack:<34} fresh max {fresh_ms:7.1f} ms  "
            f"log +{len(lines):<4} rss {self.rss_before:6.1f} -> {rss_after:6.1f} MiB  {note}"
        )
        assert "Traceback" not in text, f"{self.attack} logged a traceback:\n{text[-3000:]}"
        assert len(lines) <= HANDFUL + dropped, (
            f"{self.attack} added {len(lines)} log lines (at most {HANDFUL + dropped}):\n" + "\n".join(lines[-20:])
        )
        return rss_after - self.rss_before


@pytest.fixture
def target(production_server: Server, servers: ServerPool, request: pytest.FixtureRequest) -> Server:
    """The production server under attack (the development server is exempt: issue 11), restarted
    first if an earlier attack left it unable to answer, so that one failure does not cascade. An
    attack the server's description lists under `transport_limits` is skipped with its reason."""
    attack = request.node.originalname.removeprefix("test_")
    params = getattr(request.node, "callspec", None)
    case = params.params.get("case") if params else None
    # A limit names an attack, or one case of it: `resets_mid_body[half-body]`.
    limits = production_server.spec.transport_limits
    limit = limits.get(attack, limits.get(f"{attack}[{case}]"))
    if limit is not None:
        pytest.skip(f"{production_server.framework}: recorded transport limit: {limit}")
    for _ in range(3):
        if fresh_request(production_server)[0] == 200:
            return production_server
    restarted = servers.restart(production_server.framework)
    status, seconds = fresh_request(restarted)
    assert status == 200, f"{restarted.framework} does not answer even after a restart ({status}, {seconds:.2f} s)"
    return restarted


# --- slow and idle clients ----------------------------------------------------------------------


def open_connections(server: Server, n: int) -> list[Connection]:
    conns: list[Connection] = []
    try:
        for _ in range(n):
            conns.append(Connection(address(server), timeout=2.0))
    except BaseException:
        close_all(conns)
        raise
    return conns


def close_all(conns: list[Connection]) -> None:
    for conn in conns:
        conn.close()


class Trickle(threading.Thread):
    """Sends `data` to every connection one byte at a time, one byte per connection every
    TRICKLE_INTERVAL_S, until stopped; counts the connections the server closes meanwhile."""

    def __init__(self, conns: list[Connection], data: bytes) -> None:
        super().__init__(daemon=True)
        self.conns, self.data = list(conns), data
        self.stopped = threading.Event()
        self.dropped = 0

    def run(self) -> None:
        pos = 0
        while pos < len(self.data) and not self.stopped.is_set():
            for conn in list(self.conns):
                try:
                    conn.sock.send(self.data[pos : pos + 1])
                except OSError:
                    self.conns.remove(conn)
                    self.dropped += 1
            pos += 1
            self.stopped.wait(TRICKLE_INTERVAL_S)

    def stop(self) -> None:
        self.stopped.set()
        if self.ident is not None:  # started
            self.join(timeout=5)


def slow_attack(server: Server, attack: str, prefix: bytes, trickled: bytes) -> None:
    """SLOW_CLIENTS connections each send `prefix` at once and then `trickled` a byte at a time."""
    watch = Watch(server, attack)
    conns = open_connections(server, SLOW_CLIENTS)
    trickle = Trickle(conns, trickled)
    try:
        for conn in conns:
            conn.send(prefix, timeout=2.0)
        trickle.start()
        time.sleep(1.0)
        watch.fresh("1 s into the attack")
        time.sleep(1.5)
        watch.fresh("2.5 s into the attack")
    finally:
        trickle.stop()
        close_all(conns)
    watch.finish(dropped=SLOW_CLIENTS, note=f"(the server closed {trickle.dropped} of them meanwhile)")


def test_slow_headers(target: Server) -> None:
    """Slowloris: hundreds of clients sending a request's head a byte at a time."""
    head = request_head(length=len(OK))
    slow_attack(target, f"{SLOW_CLIENTS} slow heads", head[:1], head[1:])


def test_slow_body(target: Server) -> None:
    """Hundreds of clients that declare a body and trickle it a byte at a time."""
    slow_attack(target, f"{SLOW_CLIENTS} slow bodies", request_head(length=len(OK)), OK)


def test_idle_connection_flood(target: Server) -> None:
    """Keep-alive connections left idle after one request, then a flood of connections that never
    send a byte."""
    for proc in tree(target.pid):
        try:
            soft, _ = proc.rlimit(psutil.RLIMIT_NOFILE)
        except psutil.Error:  # gone meanwhile, or not ours to read
            continue
        assert soft == resource.RLIM_INFINITY or soft > IDLE_CLIENTS + KEEPALIVE_CLIENTS + 100, (
            f"{target.framework} (pid {proc.pid}) may open only {soft} files: raise its limit (ulimit -n) "
            f"to hold a flood of {IDLE_CLIENTS} connections"
        )
    watch = Watch(target, f"{KEEPALIVE_CLIENTS} keep-alive + {IDLE_CLIENTS} idle")
    keepalive: list[Connection] = []
    idle: list[Connection] = []
    try:
        keepalive = open_connections(target, KEEPALIVE_CLIENTS)
        for i, conn in enumerate(keepalive):
            conn.send(predict_request(), timeout=FRESH_DEADLINE_S)
            reply = conn.reply(timeout=FRESH_DEADLINE_S)
            assert reply is not None and reply.status == 200, f"keep-alive client {i}: {reply}"
        watch.fresh(f"with {KEEPALIVE_CLIENTS} idle keep-alive connections")
        idle = open_connections(target, IDLE_CLIENTS)
        watch.fresh(f"with {IDLE_CLIENTS} more connections that sent nothing")
        time.sleep(2.0)
        watch.fresh(f"2 s later, {IDLE_CLIENTS} idle connections still open")
    finally:
        close_all(idle)
        close_all(keepalive)
    watch.finish(dropped=IDLE_CLIENTS + KEEPALIVE_CLIENTS)


RESET_CASES: dict[str, tuple[int, Callable[[], bytes]]] = {
    # half of a valid body: the server is reading it for the handler
    "half-body": (RESETS, lambda: predict_request()[: -len(OK) // 2]),
    # 1.5 MiB of a 4 MiB body, over the 1 MiB limit: the server is refusing it, or draining it to
    # send its 413
    "oversized-body": (10, lambda: request_head(length=4 * MIB) + b"a" * (3 * MIB // 2)),
}


@pytest.mark.parametrize("case", list(RESET_CASES))
def test_resets_mid_body(target: Server, case: str) -> None:
    """Clients that send part of a declared body and then all reset their connections at once
    (SO_LINGER 0); a fresh request right after is answered in time."""
    count, make = RESET_CASES[case]
    partial = make()
    watch = Watch(target, f"{count} resets, {case}")
    burst = open_connections(target, count)
    try:
        for conn in burst:
            conn.send(partial, timeout=5.0)
        time.sleep(0.1)  # the server has the heads and is reading the bodies
    finally:
        for conn in burst:
            conn.reset()
    watch.fresh("right after the resets")
    watch.finish(dropped=count)


# --- oversized requests -------------------------------------------------------------------------


def refused(reply: Reply | None) -> bool:
    return reply is None or 400 <= reply.status < 500


OVERSIZED: dict[str, Callable[[], tuple[tuple[str, str], ...]]] = {
    "one 16 MiB header": lambda: (("X-Big", "a" * (16 * MIB)),),
    "50,000 headers": lambda: tuple((f"X-H{i}", "v") for i in range(50_000)),
}


@pytest.mark.parametrize("attack", list(OVERSIZED), ids=["one-huge-header", "many-headers"])
def test_oversized_headers_are_refused_and_memory_stays_flat(target: Server, attack: str) -> None:
    headers = OVERSIZED[attack]()
    watch = Watch(target, attack)
    try:
        reply = exchange(target, predict_request(headers=headers), timeout=15.0)
    except TimeoutError:
        pytest.fail(f"{target.framework}: {attack} neither refused nor closed within 15 s")
    status = reply.status if reply else "closed"
    assert refused(reply), f"{target.framework} answered {attack} with {status}"
    growth = watch.finish(dropped=1, note=f"-> {status}")
    assert growth <= RSS_SLACK_MIB, f"{target.framework}: memory grew by {growth:.1f} MiB under {attack}"


@pytest.mark.parametrize(
    "where, head",
    [
        ("path", request_head("GET", "/" + "a" * 100_000, content_type=None)),
        ("query", request_head(target=f"{PREDICT}?pad={'a' * 100_000}", length=len(OK))),
    ],
    ids=["path", "query"],
)
def test_a_very_long_url_gets_a_4xx(target: Server, where: str, head: bytes) -> None:
    """100 KB of path, or of query string on the prediction endpoint: refused, never a 2xx."""
    watch = Watch(target, f"100 KB URL ({where})")
    body = b"" if head.startswith(b"GET") else OK
    reply = exchange(target, head + body)
    status = reply.status if reply else "closed"
    assert refused(reply), f"{target.framework} answered a 100 KB {where} with {status}"
    watch.finish(dropped=1, note=f"-> {status}")


# --- HTTP/1.1 behaviour -------------------------------------------------------------------------


def test_pipelined_requests_are_answered_in_order(target: Server) -> None:
    watch = Watch(target, "pipelining")
    alone = [exchange(target, predict_request(OK)), exchange(target, predict_request(OTHER))]
    assert all(r is not None and r.status == 200 for r in alone)
    with connection(target) as conn:
        conn.send(request_head("GET", "/health", content_type=None) + predict_request(OK) + predict_request(OTHER))
        replies = [conn.reply(), conn.reply(), conn.reply()]
    assert [r.status if r else None for r in replies] == [200, 200, 200]
    assert replies[0].json()["status"] == "ok"  # type: ignore[union-attr]
    assert replies[1].json() == alone[0].json()  # type: ignore[union-attr]
    assert replies[2].json() == alone[1].json()  # type: ignore[union-attr]
    assert replies[1].json() != replies[2].json()  # type: ignore[union-attr]
    watch.finish()


def test_expect_100_continue(target: Server) -> None:
    """A 100 Continue and then the answer; a server that sends no interim reply must answer once
    the body arrives anyway (RFC 9110 lets the client send it after waiting)."""
    watch = Watch(target, "Expect: 100-continue")
    with connection(target) as conn:
        conn.send(request_head(length=len(OK), headers=(("Expect", "100-continue"),)))
        try:
            interim = conn.reply(timeout=1.0)
        except TimeoutError:
            interim = None
        assert interim is None or interim.status == 100, f"before the body: {interim}"
        conn.send(OK)
        final = conn.reply()
    assert final is not None and final.status == 200, final
    assert "probability" in final.json()
    watch.finish()


def test_http_1_0_without_keep_alive_is_answered_and_closed(target: Server) -> None:
    watch = Watch(target, "HTTP/1.0")
    with connection(target) as conn:
        conn.send(predict_request(version="HTTP/1.0"))
        reply = conn.reply()
        assert reply is not None and reply.status == 200, reply
        assert "probability" in reply.json()
        assert conn.closed_by_server(timeout=2.0), "the server kept an HTTP/1.0 connection open"
    watch.finish()


def test_a_small_chunked_body_is_read(target: Server) -> None:
    watch = Watch(target, "chunked body")
    reply = exchange(target, request_head(headers=(("Transfer-Encoding", "chunked"),)) + chunked(OK, 16))
    assert reply is not None and reply.status == 200, reply
    assert "probability" in reply.json()
    watch.finish()


def test_a_chunked_body_over_the_limit_is_refused(target: Server) -> None:
    """The 1 MiB limit holds for bodies of undeclared length: a 413, or the connection closed."""
    body = b'{"pad": "' + b"a" * (BODY_LIMIT + 1024) + b'"}'
    watch = Watch(target, "chunked body over 1 MiB")
    reply = exchange(target, request_head(headers=(("Transfer-Encoding", "chunked"),)) + chunked(body, 1 << 16))
    assert reply is None or reply.status == 413, f"{target.framework}: {reply.status} {reply.body[:200]!r}"
    watch.finish(dropped=1, note=f"-> {reply.status if reply else 'closed'}")


def test_content_length_with_transfer_encoding_is_rejected(target: Server) -> None:
    """A request that could be read two ways (request smuggling): refused with a 4xx or closed, or read
    one way only — Transfer-Encoding wins and the connection is closed after the answer, as RFC 9112
    section 6.1 allows (hyper) — and never answered as two requests."""
    smuggled = request_head("GET", "/health", content_type=None)
    framed = chunked(OK, len(OK))
    head = request_head(length=len(framed), headers=(("Transfer-Encoding", "chunked"),))
    watch = Watch(target, "Content-Length + Transfer-Encoding")
    with connection(target) as conn:
        conn.send(head + framed + smuggled)
        try:
            first = conn.reply()
        except ConnectionError:
            first = None
        one_way = first is not None and first.headers.get("connection", "").lower() == "close"
        assert refused(first) or one_way, f"{target.framework} answered CL+TE with {first.status if first else None}"
        try:
            second = conn.reply(timeout=1.5) if first is not None else None
        except (TimeoutError, ConnectionError):
            second = None
        assert second is None, f"{target.framework} answered a smuggled request: {second}"
    watch.finish(dropped=1, note=f"-> {first.status if first else 'closed'}")
