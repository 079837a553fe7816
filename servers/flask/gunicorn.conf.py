"""gunicorn settings for the Flask server (servers/flask).

One worker process per core given to the server (SERVEBENCH_WORKERS, default 1): inference is
CPU-bound and holds the GIL, so more processes than cores only trade places on the CPU. The
`gthread` worker keeps connections alive (the `sync` worker closes every connection, which would
make each benchmark request pay a new TCP handshake) and its threads let slow clients wait
without blocking the others. Each worker loads and warms the models before it answers; nothing is shared across a fork.
"""

import os

bind = f"{os.environ.get('SERVEBENCH_HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("SERVEBENCH_WORKERS", "1"))
worker_class = "gthread"
threads = 8
keepalive = 30
backlog = 2048
preload_app = False
accesslog = None
errorlog = "-"
loglevel = "warning"
