"""What ./run_all.sh runs once the environment exists: train → export → for each server, start it,
benchmark each of its models, stop it → report. One combination failing is
recorded with its reason and the rest still runs; the exit code says whether anything failed."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, ClassVar

import papermill as pm
from jupyter_client.manager import AsyncKernelManager
from nbclient.exceptions import DeadKernelError
from traitlets import CaselessStrEnum

from servebench.bench.capacity_rounds import CapacitySettings, capacity_rounds
from servebench.bench.idle import shallow_idle
from servebench.bench.rounds import RoundSettings, native_rounds
from servebench.config import PARAMS_DIR, Combination, Matrix, ProfileError, load_profile, notebook_parameters
from servebench.paths import PROJECT_ROOT, out_dir, results_dir
from servebench.servers import ServerError, alive, log_tail, running_server

NOTEBOOKS = PROJECT_ROOT / "notebooks"
TRAIN_NOTEBOOKS = ("01_train_pytorch", "02_train_lightgbm", "03_export_onnx")


class IPCKernelManager(AsyncKernelManager):
    """Notebook kernels on Unix sockets instead of loopback TCP: nothing for another local user
    to connect to, and no "running over TCP without encryption" warning in every run's output."""

    transport = CaselessStrEnum(["tcp", "ipc"], default_value="ipc", config=True)

    # What ipykernel itself writes (its warnings, and a zmq traceback when it is shut down mid-cell
    # by an interrupted run) goes to this log beside the executed notebooks rather than into the
    # run's output; a cell's own error reaches its executed notebook anyway. Set by run_notebook.
    stderr_log: ClassVar[Path | None] = None

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
        if self.stderr_log is None:
            await super()._async_launch_kernel(kernel_cmd, **kw)
            return
        self.stderr_log.parent.mkdir(parents=True, exist_ok=True)
        with self.stderr_log.open("ab") as stream:
            kw["stderr"] = stream
            await super()._async_launch_kernel(kernel_cmd, **kw)


class StepFailed(Exception):
    """A step that could not complete; the message says what failed and how to look into it."""


def say(message: str) -> None:
    print(message, flush=True)


def run_notebook(name: str, out: Path, parameters: dict[str, Any], suffix: str = "") -> Path:
    source = NOTEBOOKS / f"{name}.ipynb"
    target = out / "notebooks" / f"{name}{suffix}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    declared = set(pm.inspect_notebook(str(source)))
    unknown = set(parameters) - declared
    if unknown:
        raise StepFailed(f"{name}: parameters {sorted(unknown)} are not declared in its parameters cell")
    IPCKernelManager.stderr_log = out / "notebooks" / "kernels.log"
    try:
        pm.execute_notebook(
            str(source),
            str(target),
            parameters=parameters,
            cwd=str(NOTEBOOKS),
            progress_bar=False,
            kernel_name="python3",
            kernel_manager_class=IPCKernelManager,
        )
    except pm.PapermillExecutionError as exc:
        raise StepFailed(
            f"{name} failed in cell {exc.exec_count}: {exc.ename}: {exc.evalue}\n  see the executed notebook {target}"
        ) from None
    except DeadKernelError as exc:
        raise StepFailed(
            f"{name}: its kernel died ({exc}); what it wrote last is in {IPCKernelManager.stderr_log}"
        ) from None
    return target


def _profile_params(profile: dict[str, Any], name: str, out: Path) -> dict[str, Any]:
    declared = set(pm.inspect_notebook(str(NOTEBOOKS / f"{name}.ipynb")))
    params = notebook_parameters(profile, name, declared)
    if "out_dir" in declared:
        params["out_dir"] = str(out)
    return params


def train(profile: dict[str, Any], out: Path) -> None:
    for i, name in enumerate(TRAIN_NOTEBOOKS, 1):
        say(f"== [{i}/{len(TRAIN_NOTEBOOKS)}] {name}")
        run_notebook(name, out, _profile_params(profile, name, out))


def missing_models(out: Path, combos: list[Combination]) -> list[str]:
    """The model files the chosen combinations need that the outputs folder lacks."""
    from servebench import registry

    files = {m.name: m.file for m in registry.models()}
    needed = ["preprocess.json", "reference.jsonl", *sorted({files[c.model] for c in combos if c.model in files})]
    return [name for name in needed if not (out / "models" / name).is_file()]


def parse_targets(specs: list[str]) -> dict[str, str]:
    """`--target ID=URL` (repeatable, or comma-separated): server id → base URL."""
    targets: dict[str, str] = {}
    for spec in [part for item in specs for part in item.split(",") if part.strip()]:
        name, sep, url = spec.partition("=")
        if not sep or not name.strip() or not url.strip().startswith(("http://", "https://")):
            raise ValueError(f"--target wants ID=URL, e.g. rust-ort=http://10.0.0.5:8000, not {spec!r}")
        targets[name.strip()] = url.strip().rstrip("/")
    return targets


def target_combinations(targets: dict[str, str], matrix: Matrix, models: list[str] | None) -> list[Combination]:
    """The models each running server says it serves (its /health), that the matrix knows."""
    import httpx

    combos = []
    for name, url in targets.items():
        try:
            served = httpx.get(f"{url}/health", timeout=10).json().get("models", [])
        except (httpx.HTTPError, ValueError) as exc:
            raise StepFailed(f"--target {name}: {url}/health did not answer: {exc}") from None
        combos += [Combination(name, m) for m in served if m in matrix.models and (not models or m in models)]
    return combos


@contextmanager
def attached_server(url: str) -> Iterator[dict[str, Any]]:
    """A server running elsewhere: no pid, no cores, no start-up time; its cost is not measured."""
    yield {"base_url": url, "pid": None, "startup_seconds": None, "cpus": "", "log": None}


def _benchmark_parameters(profile: dict[str, Any]) -> dict[str, Any]:
    """The benchmark notebook's parameters as the profile (over the default profile) sets them."""
    name = "04_benchmark"
    return notebook_parameters(profile, name, set(pm.inspect_notebook(str(NOTEBOOKS / f"{name}.ipynb"))))


def round_settings(profile: dict[str, Any]) -> RoundSettings:
    """`native_rounds` of the profile, with the benchmark notebook's window parameters."""
    params = _benchmark_parameters(profile)
    return RoundSettings(
        rounds=int(profile.get("native_rounds", 1)),
        windows=int(params["windows"]),
        window_s=float(params["native_window_s"]),
        warmup=int(params["native_warmup"]),
        parity_tolerance=float(params["parity_tolerance"]),
    )


def capacity_settings(profile: dict[str, Any]) -> CapacitySettings:
    """`capacity_rounds` of the profile, with the benchmark notebook's ladder parameters."""
    params = _benchmark_parameters(profile)
    return CapacitySettings(
        rounds=int(profile.get("capacity_rounds", 0)),
        step_s=float(params["ladder_step_s"]),
        slo_p99_ms=float(params["slo_p99_ms"]),
        connections=int(params["open_loop_connections"]),
        refine=int(params["ladder_refine"]),
    )


def benchmark_one(
    combo: Combination, profile: dict[str, Any], out: Path, server: dict[str, Any], earlier: Path | None = None
) -> dict[str, Any]:
    """One model of a running server (started here, or elsewhere with --target); `earlier`: its
    single-request windows from the rounds before."""
    record: dict[str, Any] = {"framework": combo.framework, "model": combo.model}
    if server["pid"] is None:
        record["target"] = server["base_url"]
    started = time.time()
    try:
        params = _profile_params(profile, "04_benchmark", out)
        params.update(
            framework=combo.framework,
            model=combo.model,
            base_url=server["base_url"],
            server_pid=int(server["pid"]) if server["pid"] else None,
            startup_seconds=float(server["startup_seconds"]) if server["startup_seconds"] else None,
            server_cpus=str(server["cpus"]) or None,
            native_earlier=str(earlier) if earlier else None,
        )
        failure = None
        try:
            run_notebook("04_benchmark", out, params, suffix=f"__{combo.key}")
        except StepFailed as exc:
            failure = str(exc)
        # A server that died is a failed run, whatever the notebook made of its silence.
        if server["pid"] and not alive(int(server["pid"])):
            raise StepFailed("the server died during the benchmark; its log ends:\n" + log_tail(server["log"]))
        summary_path = results_dir(out) / f"{combo.key}.summary.json"
        summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
        if summary.get("status") == "incorrect":
            record.update(status="incorrect", reason=summary.get("reason", ""))
        elif failure:
            tail = log_tail(server["log"]) if server["log"] else "(a server running elsewhere: no log here)"
            raise StepFailed(failure + "\n  server log tail:\n" + tail)
        else:
            record.update(status=summary.get("status", "ok"), reason=summary.get("reason", ""))
    except StepFailed as exc:
        record.update(status="failed", reason=str(exc))
    record["seconds"] = round(time.time() - started, 1)
    return record


def benchmark(
    profile: dict[str, Any], out: Path, combos: list[Combination], targets: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """Each server is started once for all the models it is to be measured with (they are all
    loaded at start-up anyway), and again only if it dies; one that cannot start fails its
    remaining models with the reason. With `native_rounds` in the profile, the single-request
    windows are first measured in rounds across every endpoint (servebench.bench.rounds), and
    this pass is the last round."""
    runs_path = results_dir(out) / "runs.json"
    runs_path.parent.mkdir(parents=True, exist_ok=True)
    # Every result of an earlier run goes: the report must never show an endpoint this run did
    # not measure (or measured as INCORRECT) with an earlier run's figures.
    for pattern in ("*.summary.json", "*.sequential.parquet", "*.load.parquet", "*.windows.json", "generator.json"):
        for stale in results_dir(out).glob(pattern):
            stale.unlink()
    records: list[dict[str, Any]] = []
    targets = targets or {}

    def server_for(framework: str) -> AbstractContextManager[dict[str, Any]]:
        url = targets.get(framework)
        return attached_server(url) if url else running_server(framework, out)

    earlier: dict[str, Path] = {}
    if int(profile.get("native_rounds", 1)) > 1:
        earlier = native_rounds(combos, round_settings(profile), out / "models", results_dir(out), server_for, say)

    def done(record: dict[str, Any]) -> None:
        records.append(record)
        runs_path.write_text(json.dumps(records, indent=2) + "\n")
        mark = {"ok": "ok", "incorrect": "INCORRECT", "failed": "FAILED"}[record["status"]]
        say(f"   {mark} in {record['seconds']}s" + (f": {record['reason']}" if record["reason"] else ""))

    def announce(combo: Combination) -> None:
        i = len(records) + 1
        where = f" at {targets[combo.framework]}" if combo.framework in targets else ""
        say(
            f"== [{i}/{len(combos)}] benchmark {combo.framework} × {combo.model}{where}"
            f" ({len(combos) - i} left after this)"
        )

    for framework in dict.fromkeys(c.framework for c in combos):
        pending = [c for c in combos if c.framework == framework]
        while pending:
            started = time.time()
            try:
                with server_for(framework) as server:
                    while pending:
                        combo = pending.pop(0)
                        announce(combo)
                        done(benchmark_one(combo, profile, out, server, earlier.get(combo.key)))
                        if server["pid"] and not alive(int(server["pid"])):
                            break  # the next model gets a fresh server
            except ServerError as exc:
                seconds = round(time.time() - started, 1)
                for combo in pending:
                    announce(combo)
                    done(
                        {
                            "framework": framework,
                            "model": combo.model,
                            "status": "failed",
                            "reason": str(exc),
                            "seconds": seconds,
                        }
                    )
                pending = []
    if int(profile.get("capacity_rounds", 0)) > 0:
        capacity_rounds(combos, capacity_settings(profile), out / "models", results_dir(out), server_for, say)
    return records


def soak(profile: dict[str, Any], out: Path, frameworks: list[str]) -> None:
    from servebench.bench.soak import run_soak

    settings = profile.get("soak", {})
    results = []
    for i, framework in enumerate(frameworks, 1):
        level, seconds = settings["concurrency"], settings["duration_s"]
        say(f"== [{i}/{len(frameworks)}] soak {framework}: concurrency {level} for {seconds}s")
        try:
            with running_server(framework, out) as server:
                reference = out / "models" / "reference.jsonl"
                results.append(run_soak(framework, server, level, seconds, reference))
        except ServerError as exc:
            results.append({"framework": framework, "status": "failed", "reason": str(exc)})
        say(f"   {results[-1].get('status')}")
    path = results_dir(out) / "soak.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")


def generator_check(profile: dict[str, Any], out: Path, targets: dict[str, str]) -> None:
    """The load generator against /health of the server with the highest closed-loop peak, at
    multiples of that peak (results/generator.json); a failure here is reported, not fatal."""
    from servebench.bench import results as result_files
    from servebench.bench.cpus import client_cpus
    from servebench.bench.generators import self_measurement

    peaks = [
        (max((x.get("achieved_rate", 0.0) for x in s.get("load", [])), default=0.0), s["framework"])
        for s in result_files.read_summaries(results_dir(out))
        if s["status"] == "ok"
    ]
    if not peaks or max(peaks)[0] <= 0:
        return
    peak, framework = max(peaks)
    settings = profile.get("generator", {})
    multiples, step_s = list(settings.get("rate_multiples", [1.2])), float(settings.get("step_s", 5))
    say(f"== load generator self-measurement: /health of {framework} at {multiples} × {peak:,.0f} req/s")
    path = results_dir(out) / "generator.json"
    try:
        if framework in targets:
            doc = self_measurement(f"{targets[framework]}/health", framework, peak, multiples, step_s, None)
        else:
            with running_server(framework, out) as server:
                cpus = client_cpus(str(server.get("cpus") or "") or None)
                doc = self_measurement(f"{server['base_url']}/health", framework, peak, multiples, step_s, cpus)
    except (ServerError, RuntimeError, OSError) as exc:
        doc = {"framework": framework, "peak": peak, "rows": [], "error": str(exc)}
        say(f"   could not measure: {exc}")
    path.write_text(json.dumps(doc, indent=2) + "\n")


def report(profile: dict[str, Any], out: Path, compare: Path | None = None) -> Path:
    say("== report: 05_report → report.html")
    params = _profile_params(profile, "05_report", out)
    if compare is not None:
        params["compare_dir"] = str(compare)
    executed = run_notebook("05_report", out, params)
    html = out / "report.html"
    from servebench.report.html import notebook_to_html

    notebook_to_html(executed, html)
    return html


def _raise_interrupt(signum: int, _frame: object) -> None:
    """The first SIGINT or SIGTERM stops the run; any that follow (run_all.sh relays a SIGTERM
    after Ctrl-C's SIGINT) are ignored, so that the clean-up (the notebook's kernel shutting down,
    the servers stopping) is not itself interrupted into a traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # The notebook's kernel goes down with the run: what the notebook client and asyncio say
    # about that ("Kernel died", "Task exception was never retrieved") reads like a crash.
    for name in ("asyncio", "traitlets", "papermill", "nbclient"):
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="run_all.sh", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small counts and short durations (params/quick.yaml)")
    parser.add_argument("--profile", type=Path, help="a parameter profile (default params/default.yaml)")
    parser.add_argument(
        "--frameworks", help="comma-separated subset, e.g. fastapi,rust-ort (flask-dev only when named)"
    )
    parser.add_argument("--models", help="comma-separated subset, e.g. pytorch_onnx,lightgbm_onnx")
    parser.add_argument("--out", help="outputs folder (default outputs/)")
    parser.add_argument("--soak", action="store_true", help="also run the long load test on every server")
    parser.add_argument("--skip-train", action="store_true", help="reuse the models already in the outputs folder")
    parser.add_argument(
        "--target",
        action="append",
        default=[],
        metavar="ID=URL",
        help="benchmark a server already running at URL instead of starting servers (repeatable); "
        "its process-level cost is not measured",
    )
    parser.add_argument(
        "--compare", type=Path, metavar="OTHER_OUTPUTS", help="add a section comparing this run with an earlier one"
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGINT, _raise_interrupt)

    profile_path = args.profile or PARAMS_DIR / ("quick.yaml" if args.quick else "default.yaml")
    try:
        profile = load_profile(profile_path)
    except ProfileError as exc:
        parser.error(str(exc))
    out = out_dir(args.out)
    os.environ["SERVEBENCH_OUT"] = str(out)
    matrix = Matrix.load()
    split = lambda text: [s.strip() for s in text.split(",") if s.strip()] if text else None  # noqa: E731
    try:
        targets = parse_targets(args.target)
        if targets and args.frameworks:
            raise ValueError("--target and --frameworks do not go together: the targets are the servers")
        combos = [] if targets else matrix.combinations(split(args.frameworks), split(args.models))
        if args.models:
            matrix.combinations(None, split(args.models))  # checks the names
    except ValueError as exc:
        say(f"run_all.sh: {exc}")
        return 2
    if args.compare is not None and not (args.compare / "results").is_dir():
        say(f"run_all.sh: --compare {args.compare}: no results/ folder there (the outputs folder of an earlier run)")
        return 2
    if args.skip_train:
        missing = missing_models(out, combos or [Combination("", m) for m in split(args.models) or matrix.models])
        if missing:
            say(
                f"run_all.sh: --skip-train, but {out / 'models'} lacks {', '.join(missing)}; "
                f"run once without --skip-train (with the same --out) to train and export the models"
            )
            return 2
    try:
        if not args.skip_train:
            train(profile, out)
        if targets:
            combos = target_combinations(targets, matrix, split(args.models))
            if not combos:
                known = ", ".join(matrix.models)
                raise StepFailed(f"the targets {', '.join(targets)} serve none of the models {known}")
        say(f"servebench: profile {profile_path.name}, outputs in {out}, {len(combos)} combinations")
        with shallow_idle(bool(profile.get("hold_cpu_idle", True))) as idle:
            say(f"   CPU idle states: {idle}")
            records = benchmark(profile, out, combos, targets)
            if any(r["status"] == "ok" for r in records):
                generator_check(profile, out, targets)
            if args.soak:
                # The long load test is about servers, so without --frameworks it covers every one,
                # flask-dev included.
                soak(profile, out, split(args.frameworks) or list(matrix.frameworks))
        html = report(profile, out, args.compare.resolve() if args.compare else None)
    except StepFailed as exc:
        say(f"run_all.sh: FAILED: {exc}")
        return 1
    except KeyboardInterrupt:
        say("run_all.sh: interrupted; servers stopped")
        return 130
    bad = [r for r in records if r["status"] != "ok"]
    say(f"\nReport: {html}")
    say(f"Models: {out / 'models'}  metrics: {out / 'metrics'}")
    say(f"Results: {results_dir(out)}  executed notebooks: {out / 'notebooks'}")
    if bad:
        say(
            f"{len(bad)} of {len(records)} combinations did not pass: "
            + ", ".join(f"{r['framework']}×{r['model']} ({r['status']})" for r in bad)
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
