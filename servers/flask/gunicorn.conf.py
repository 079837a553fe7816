"""gunicorn settings for the Flask server (servers/flask).

One worker process per core given to the server (SERVEBENCH_WORKERS, default 1): inference is
CPU-bound and holds the GIL, so more processes than cores only trade places on the CPU. Each
worker loads and warms the models before it answers; nothing is shared across a fork.

The `gevent` worker, as gunicorn's documentation advises for servers that face clients directly
rather than through a buffering proxy: it multiplexes connections on one event loop, so slow or
idle clients wait without holding a thread (the `gthread` worker is starved by as many slow
clients as it has threads; the `sync` worker also closes every connection, so each request would
pay a new TCP handshake). Inference still runs inline: it takes tens of microseconds.
"""

import os

import gevent

bind = f"{os.environ.get('SERVEBENCH_HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("SERVEBENCH_WORKERS", "1"))
worker_class = "gevent"
# Above any flood the tests send; the launcher raises the open-file limit above it.
worker_connections = 4096
# Under gevent this bounds the wait for a request head, from connect and between requests alike,
# so idle and slow-header clients are closed after it.
keepalive = 5
backlog = 2048
preload_app = False
accesslog = None
errorlog = "-"
loglevel = "warning"
BODY_TIMEOUT_S = 10


def pre_request(worker: object, req: object) -> None:
    """A body that stalls for BODY_TIMEOUT_S ends the request (a 400) and its connection: gunicorn
    puts no timeout of its own on body reads."""
    req.unreader.sock.settimeout(BODY_TIMEOUT_S)  # type: ignore[attr-defined]


def post_request(worker: object, req: object, environ: object, resp: object) -> None:
    """Hand the loop to the other connections after each answer. A gevent greenlet yields only
    when a socket would block, and a keep-alive client's next request is often in before the
    answer to its last is out, so one connection could be served back to back while others wait:
    at 128 connections some waited 1-2 s."""
    gevent.sleep(0)
