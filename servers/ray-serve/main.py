"""Ray Serve on one machine, as its documentation starts it from Python: a local Ray cluster of one
CPU (`ray.init`), Serve's HTTP proxy on HOST:PORT (`serve.start`), the application of
serve_app.py (`serve.run`); then wait for SIGTERM and take the whole cluster down.

    main.py HOST PORT      (the launcher runs it from server.yaml)

Everything Ray writes (session logs, sockets, the cluster's auth token) goes to a private run
folder under the temp dir, removed on exit; nothing goes to $HOME or /tmp/ray, and no other Ray
cluster on the machine is joined or touched.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
# Ahead of everything on every Ray process's path: a stand-in that keeps rfc3987_syntax out
# (pythonpath/rfc3987_syntax.py says why), then this folder, for serve_app.
PYTHONPATH = [HERE / "pythonpath", HERE]
INIT_ATTEMPTS = 3
APP = "titanic"

# Ray's configuration is its environment, read by every process it starts.
RAY_ENVIRONMENT = {
    # Offline: no usage report.
    "RAY_USAGE_STATS_ENABLED": "0",
    # A proxy that has not answered its first readiness check within 5 s (the default) is
    # restarted; on a busy core its start-up takes longer than that, and each restart starts over.
    "RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S": "60",
    # The launcher's SIGTERM reaches every process of the group at once, so there is no cluster
    # left to drain through (the default waits up to 30 s for the drain first).
    "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",
}
# Serve's own logs go to files in the run folder; its components' warnings and errors also reach
# this process's output (and so the launcher's log). No access log, as on every other stack.
LOGGING = {"log_level": "WARNING", "enable_access_log": False}


def say(message: str) -> None:
    print(f"ray-serve: {message}", flush=True)


def environment(run: Path) -> None:
    """Set before Ray starts, so that the raylet, the agents and every worker inherit it."""
    token = run / "auth_token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    os.environ.update(RAY_ENVIRONMENT)
    # Ray 2.60 turns token authentication on for a new local cluster and would write the token
    # to ~/.ray/auth_token; this cluster's token lives and dies with its run folder.
    os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token))
    inherited = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    os.environ["PYTHONPATH"] = os.pathsep.join([*map(str, PYTHONPATH), *inherited])
    sys.path[:0] = [str(p) for p in PYTHONPATH]


def sweep_session() -> None:
    """Kill whatever is left of this session but this process. Ray's workers run in process groups
    of their own, and a raylet that crashes at start-up leaves its agents behind; under the
    launcher this process leads a session of its own, which holds all of them. Never done when
    started from a shell, whose session is the user's."""
    if os.getsid(0) != os.getpid():
        return
    killed = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if process.pid != os.getpid() and os.getsid(process.pid) == os.getpid():
                process.kill()
                killed.append(process)
    deadline = time.monotonic() + 5
    while killed and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):  # reap this process's own children
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        killed = [p for p in killed if running(p)]
        time.sleep(0.02)


def running(process: psutil.Process) -> bool:
    """Not gone yet. A zombie whose parent has not reaped it is dead all the same, once its files
    (the proxy's listening socket among them) are closed: the kernel may show the zombie while
    the rest of a killed process's threads are still being torn down."""
    try:
        return process.status() != psutil.STATUS_ZOMBIE or bool(os.listdir(f"/proc/{process.pid}/fd"))
    except (psutil.Error, OSError):
        return False


def stop_cluster() -> bool:
    """Under the launcher, whose SIGTERM has reached the GCS and the raylet as well: kill every
    process of the session at once (the raylet, going down, would leave its workers to notice
    its death on their own, seconds later), and say so. Run from a shell: let Ray stop what it
    started."""
    if os.getsid(0) == os.getpid():
        sweep_session()
        return True
    if "ray" in sys.modules:
        import ray

        with contextlib.suppress(Exception):
            ray.shutdown()
    return False


def raylet_failure(temp_dir: Path) -> str:
    """The raylet's fatal line, if it died at start-up."""
    for log in sorted(temp_dir.glob("session_*/logs/raylet.out")):
        for line in log.read_text(errors="replace").splitlines():
            if "Check failed" in line or " F " in line[:40]:
                return line.split("] ", 1)[-1][:300]
    return ""


def tree_threads() -> list[int]:
    """Every thread of this process and of its descendants (Ray's GCS, raylet, agents, workers)."""
    me = psutil.Process()
    threads = []
    for process in [me, *me.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            threads += [t.id for t in process.threads()]
    return threads


def pin(cpus: set[int]) -> None:
    """Every thread of the tree onto `cpus`, again until none is left elsewhere (a thread or a
    process started during one pass inherits its creator's affinity, maybe the old one)."""
    for _ in range(10):
        moved = 0
        for tid in tree_threads():
            with contextlib.suppress(OSError):
                if os.sched_getaffinity(tid) != cpus:
                    os.sched_setaffinity(tid, cpus)
                    moved += 1
        if not moved:
            return


def start_ray(run: Path) -> None:
    """A local cluster of one CPU, its own (never one found on the machine), without the
    dashboard. Ray's internal gRPC ports listen on every interface whatever the node address
    (`_node_ip_address="127.0.0.1"` resolves to the machine's address); the token guards them.

    Started on every core, then pinned back: the raylet gives its dashboard agent (a Python
    process that imports most of Ray, started beside the runtime-env agent) a fixed 15 s to
    write its port files and aborts past that, a limit no setting changes in Ray 2.60. On the
    one core the launcher gives the server, shared during start-up with the other Ray processes
    and whatever else runs there, it missed that limit under load. Before Serve starts, every
    process and thread is back on the server's cores: Serve's controller, proxy and replica
    start and run there with Ray's own daemons. A start that fails all the same is retried with
    a fresh cluster."""
    import ray

    server_cpus = os.sched_getaffinity(0)
    for attempt in range(1, INIT_ATTEMPTS + 1):
        os.sched_setaffinity(0, range(os.cpu_count() or 1))
        temp_dir = run / f"ray{attempt}"
        try:
            ray.init(
                address="local",
                num_cpus=1,
                num_gpus=0,
                include_dashboard=False,
                _temp_dir=str(temp_dir),
            )
            return
        except Exception as exc:
            cause = raylet_failure(temp_dir) or str(exc)
            say(f"Ray failed to start (attempt {attempt} of {INIT_ATTEMPTS}): {cause}")
            with contextlib.suppress(Exception):
                ray.shutdown()
            sweep_session()
            if attempt == INIT_ATTEMPTS:
                raise
        finally:
            pin(server_cpus)


def deployment_failure() -> str:
    """The error that ended the deployment (the last line of Serve's message, which holds the
    replica's traceback): serve.run says only that the deployment failed."""
    from ray import serve

    with contextlib.suppress(Exception):
        for deployment in serve.status().applications[APP].deployments.values():
            lines = [line.strip() for line in deployment.message.splitlines() if line.strip()]
            if lines:
                return lines[-1]
    return ""


def serve_forever(run: Path, host: str, port: int) -> None:
    """Start everything, then serve until a signal (SIGTERM, SIGINT) ends it."""
    started = time.monotonic()
    environment(run)
    from ray import serve

    start_ray(run)
    # In place of the driver's handlers that ray.init installed (a SIGTERM would print a stack
    # trace from Ray's C++ layer, then drain a node the launcher's signal is already tearing
    # down): end quietly, wherever start-up has got to; main() stops the cluster.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    ray_up = time.monotonic()
    serve.start(proxy_location="HeadOnly", http_options={"host": host, "port": port}, logging_config=LOGGING)
    serve_up = time.monotonic()
    from serve_app import app

    try:
        serve.run(app, name=APP, route_prefix="/", logging_config=LOGGING)
    except RuntimeError as exc:
        raise RuntimeError(f"{exc} {deployment_failure()}".strip()) from None
    say(
        f"serving on http://{host}:{port} (Ray {ray_up - started:.1f} s, Serve's proxy "
        f"{serve_up - ray_up:.1f} s, the replica {time.monotonic() - serve_up:.1f} s)"
    )
    threading.Event().wait()


def main(argv: list[str]) -> None:
    if len(argv) != 2 or not argv[1].isdigit():
        say("usage: main.py HOST PORT")
        sys.exit(2)
    # Until Ray installs its own handler (which exits the same way): a SIGTERM during the imports
    # still cleans up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    run = Path(tempfile.mkdtemp(prefix="sb-ray."))
    # From a shell, Ray's exit handlers run and write to the session folder on their way out:
    # registered before them, this runs after them.
    atexit.register(shutil.rmtree, run, ignore_errors=True)
    code = 1
    try:
        serve_forever(run, argv[0], int(argv[1]))
        code = 0
    except Exception as exc:  # a start-up failure: one clear line, not Ray's stack
        say(f"failed to start: {type(exc).__name__}: {exc}")
    except SystemExit as exc:  # SIGTERM
        code = exc.code if isinstance(exc.code, int) else 1
    except KeyboardInterrupt:  # SIGINT
        code = 130
    finally:
        killed = stop_cluster()
        shutil.rmtree(run, ignore_errors=True)
    if killed:
        # Ray's exit handlers would only wait on the cluster just killed, past the launcher's
        # grace period.
        sys.stdout.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    main(sys.argv[1:])
