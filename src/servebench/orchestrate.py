"""What ./run_all.sh runs once the environment exists: train → export → for each framework × model
combination start its server, benchmark it, stop it → report. One combination failing is
recorded with its reason and the rest still runs; the exit code says whether anything failed."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import papermill as pm

from servebench.config import PARAMS_DIR, Combination, Matrix, load_profile, notebook_parameters
from servebench.paths import PROJECT_ROOT, out_dir, results_dir
from servebench.servers import ServerError, alive, log_tail, running_server

NOTEBOOKS = PROJECT_ROOT / "notebooks"
TRAIN_NOTEBOOKS = ("01_train_pytorch", "02_train_lightgbm", "03_export_onnx")


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
    try:
        pm.execute_notebook(
            str(source),
            str(target),
            parameters=parameters,
            cwd=str(NOTEBOOKS),
            progress_bar=False,
            kernel_name="python3",
        )
    except pm.PapermillExecutionError as exc:
        raise StepFailed(
            f"{name} failed in cell {exc.exec_count}: {exc.ename}: {exc.evalue}\n  see the executed notebook {target}"
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


def benchmark_one(combo: Combination, profile: dict[str, Any], out: Path) -> dict[str, Any]:
    record: dict[str, Any] = {"framework": combo.framework, "model": combo.model}
    started = time.time()
    try:
        with running_server(combo.framework, out) as server:
            params = _profile_params(profile, "04_benchmark", out)
            params.update(
                framework=combo.framework,
                model=combo.model,
                base_url=server["base_url"],
                server_pid=int(server["pid"]),
                startup_seconds=float(server["startup_seconds"]),
                server_cpus=str(server["cpus"]),
            )
            failure = None
            try:
                run_notebook("04_benchmark", out, params, suffix=f"__{combo.key}")
            except StepFailed as exc:
                failure = str(exc)
            # A server that died is a failed run, whatever the notebook made of its silence.
            if not alive(int(server["pid"])):
                raise StepFailed("the server died during the benchmark; its log ends:\n" + log_tail(server["log"]))
        summary_path = results_dir(out) / f"{combo.key}.summary.json"
        summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
        if summary.get("status") == "incorrect":
            record.update(status="incorrect", reason=summary.get("reason", ""))
        elif failure:
            raise StepFailed(failure + "\n  server log tail:\n" + log_tail(server["log"]))
        else:
            record.update(status=summary.get("status", "ok"), reason=summary.get("reason", ""))
    except (StepFailed, ServerError) as exc:
        record.update(status="failed", reason=str(exc))
    record["seconds"] = round(time.time() - started, 1)
    return record


def benchmark(profile: dict[str, Any], out: Path, combos: list[Combination]) -> list[dict[str, Any]]:
    runs_path = results_dir(out) / "runs.json"
    runs_path.parent.mkdir(parents=True, exist_ok=True)
    for stale in results_dir(out).glob("*.summary.json"):
        stale.unlink()
    records: list[dict[str, Any]] = []
    for i, combo in enumerate(combos, 1):
        say(f"== [{i}/{len(combos)}] benchmark {combo.framework} × {combo.model} ({len(combos) - i} left after this)")
        record = benchmark_one(combo, profile, out)
        records.append(record)
        runs_path.write_text(json.dumps(records, indent=2) + "\n")
        mark = {"ok": "ok", "incorrect": "INCORRECT", "failed": "FAILED"}[record["status"]]
        say(f"   {mark} in {record['seconds']}s" + (f": {record['reason']}" if record["reason"] else ""))
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


def report(profile: dict[str, Any], out: Path) -> Path:
    say("== report: 05_report → report.html")
    executed = run_notebook("05_report", out, _profile_params(profile, "05_report", out))
    html = out / "report.html"
    from servebench.report.html import notebook_to_html

    notebook_to_html(executed, html)
    return html


def _raise_interrupt(signum: int, _frame: object) -> None:
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
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_interrupt)

    profile_path = args.profile or PARAMS_DIR / ("quick.yaml" if args.quick else "default.yaml")
    profile = load_profile(profile_path)
    out = out_dir(args.out)
    os.environ["SERVEBENCH_OUT"] = str(out)
    matrix = Matrix.load()
    split = lambda text: [s.strip() for s in text.split(",") if s.strip()] if text else None  # noqa: E731
    try:
        combos = matrix.combinations(split(args.frameworks), split(args.models))
    except ValueError as exc:
        say(f"run_all.sh: {exc}")
        return 2
    say(f"servebench: profile {profile_path.name}, outputs in {out}, {len(combos)} combinations")
    try:
        if not args.skip_train:
            train(profile, out)
        records = benchmark(profile, out, combos)
        if args.soak:
            # The long load test is about servers, so without --frameworks it covers every one,
            # flask-dev included.
            soak(profile, out, split(args.frameworks) or list(matrix.frameworks))
        html = report(profile, out)
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
