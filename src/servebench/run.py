"""The run that ./run_all.sh starts once the environment exists: train → export → for each server,
start it, benchmark each of its endpoints, stop it → report. One endpoint failing is recorded with
its reason and the rest still runs; the caller's exit code says whether anything failed."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from servebench import registry
from servebench.bench.rounds import capacity_rounds, single_request_rounds
from servebench.builtin_packs import BuiltinPack
from servebench.config import Combination, Matrix
from servebench.notebooks import StepFailed, profile_parameters, run_notebook
from servebench.packs import ModelPack, PackError, install, load_pack
from servebench.paths import results_dir
from servebench.results import files as result_files
from servebench.servers import ServerError, ServerPool, alive, log_tail, running_server, start_server, stop_server
from servebench.settings import RunSettings, run_settings

# Run once after every trained model of params/models.yaml: makes every export of them.
EXPORT_NOTEBOOK = "03_export_onnx"
# Run once for each built-in pack of params/models.yaml that the run needs.
PACK_NOTEBOOK = "03b_train_pack"


def say(message: str) -> None:
    print(message, flush=True)


def train(profile: dict[str, Any], out: Path) -> None:
    """Each trained model of params/models.yaml by its notebook (the profile's section of it, then
    the model's own `params`), then every export of them."""
    from servebench import registry

    trained = registry.trained_models()
    steps = len(trained) + 1
    for i, spec in enumerate(trained, 1):
        notebook = str(spec.notebook)
        say(f"== [{i}/{steps}] {notebook}: {spec.name}")
        params = {**profile_parameters(profile, notebook, out), **spec.params, "model": spec.name}
        run_notebook(notebook, out, params, suffix=f"__{spec.name}")
    say(f"== [{steps}/{steps}] {EXPORT_NOTEBOOK}")
    run_notebook(EXPORT_NOTEBOOK, out, profile_parameters(profile, EXPORT_NOTEBOOK, out))


def read_packs(folders: list[Path], reserved: set[str]) -> tuple[list[ModelPack], list[dict[str, Any]]]:
    """Every pack checked before anything starts: those that can be served, and a failed record
    for each that cannot (with its message); a refused pack does not stop the others. `reserved`:
    the built-in packs' names."""
    from servebench import registry

    taken = {m.name for m in registry.models()} | reserved
    packs: list[ModelPack] = []
    refused: list[dict[str, Any]] = []
    for folder in folders:
        try:
            pack = load_pack(folder, reserved=frozenset(taken))
        except PackError as exc:
            name = Path(folder).resolve().name
            refused.append({"framework": "-", "model": name, "status": "failed", "reason": str(exc), "seconds": 0})
            continue
        taken.add(pack.name)
        packs.append(pack)
        say(f"   model pack {pack.name}: {pack.describe()}, {pack.rows} sample rows")
    return packs, refused


def builtin_folder(out: Path, name: str) -> Path:
    return out / "models" / "builtin" / name


def build_builtin_packs(specs: list[BuiltinPack], out: Path, rebuild: bool) -> list[ModelPack]:
    """The built-in packs the run needs, trained and exported (again, unless `rebuild` is off and
    they exist), then read as any pack is."""
    made = []
    for spec in specs:
        folder = builtin_folder(out, spec.name)
        if rebuild or not folder.is_dir():
            say(f"== built-in model pack {spec.name}: {spec.label}, trained on scikit-learn's {spec.dataset}")
            run_notebook(PACK_NOTEBOOK, out, {"pack": spec.name, "out_dir": str(out)}, suffix=f"__{spec.name}")
        try:
            pack = load_pack(folder)
        except PackError as exc:
            raise StepFailed(f"the built-in pack {spec.name}: {exc}") from None
        say(f"   model pack {pack.name}: {pack.describe()}, {pack.rows} sample rows")
        made.append(pack)
    return made


def install_packs(packs: list[ModelPack], out: Path) -> None:
    """The run's packs, and only they, in the models folder: the servers serve what is there."""
    import shutil

    from servebench.registry import PACKS_DIR

    folder = out / "models" / PACKS_DIR
    if folder.exists():
        shutil.rmtree(folder)
    for pack in packs:
        install(pack, out / "models")


def missing_models(out: Path, combos: list[Combination]) -> list[str]:
    """The model files the chosen combinations need that the outputs folder lacks."""
    from servebench import registry

    files = {m.name: m.file for m in registry.models()}
    needed = ["preprocess.json", "reference.jsonl", *sorted({files[c.model] for c in combos if c.model in files})]
    return [name for name in needed if not (out / "models" / name).is_file()]


def target_combinations(targets: dict[str, str], matrix: Matrix, models: list[str] | None) -> list[Combination]:
    """The models each running server says it serves (its /health), that the matrix knows."""
    import httpx

    combos = []
    for name, url in targets.items():
        try:
            served = httpx.get(f"{url}/health", timeout=10).json().get("models", [])
        except (httpx.HTTPError, ValueError) as exc:
            raise StepFailed(f"--target {name}: {url}/health did not answer: {exc}") from None
        served += [p.name for p in matrix.packs if _ready(f"{url}/v2/models/{p.name}/ready")]
        combos += [Combination(name, m) for m in served if m in matrix.models and (not models or m in models)]
    return combos


def _ready(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=10).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def attached_server(url: str) -> Iterator[dict[str, Any]]:
    """A server running elsewhere: no pid, no cores, no start-up time; its cost is not measured."""
    yield {"base_url": url, "pid": None, "startup_seconds": None, "cpus": "", "log": None}


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
        params = profile_parameters(profile, "04_benchmark", out)
        # the capacity rounds after it measure the rest of the windows
        params["windows"] = run_settings(profile).benchmark_windows
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
        summary_path = result_files.observations_path(results_dir(out), combo.key)
        summary = result_files.read_observations(summary_path) if summary_path.is_file() else {}
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
    profile: dict[str, Any],
    settings: RunSettings,
    out: Path,
    combos: list[Combination],
    targets: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Each server is started once for the whole run and kept up, idle, beside the others
    (servebench.servers.ServerPool), except a stack whose idle work disturbs them (`own_slot` in
    its description), which is up only for its own turns; a server is started again only if it
    dies, and one that cannot start fails its remaining models with the reason. With
    `native_rounds` in the profile, the single-request windows are measured in trials across every
    endpoint (servebench.bench.rounds): some before this pass, this pass one, and each of the
    `capacity_rounds` after it (which search each capacity again) another."""
    runs_path = results_dir(out) / "runs.json"
    runs_path.parent.mkdir(parents=True, exist_ok=True)
    # Every result of an earlier run goes: the report must never show an endpoint this run did
    # not measure (or measured as INCORRECT) with an earlier run's figures.
    for pattern in (
        "*.observations.json",
        "*.summary.json",
        "*.sequential.parquet",
        "*.load.parquet",
        "*.windows.json",
        "generator.json",
    ):
        for stale in results_dir(out).glob(pattern):
            stale.unlink()
    targets = targets or {}
    specs = registry.servers()

    def own_slot(framework: str) -> bool:
        return framework in specs and bool(specs[framework].own_slot)

    # start_server and stop_server looked up at each call: the tests replace them
    pool = ServerPool(out, own_slot, start=lambda f, o: start_server(f, o), stop=lambda f, o: stop_server(f, o))
    with pool:

        def server_for(framework: str) -> AbstractContextManager[dict[str, Any]]:
            url = targets.get(framework)
            return attached_server(url) if url else pool.use(framework)

        records = _benchmark_in_trials(profile, settings, out, combos, targets, server_for, runs_path)
    if pool.starts:
        say("   server starts: " + ", ".join(f"{f} {n}" for f, n in pool.starts.items()))
    return records


def _benchmark_in_trials(
    profile: dict[str, Any],
    settings: RunSettings,
    out: Path,
    combos: list[Combination],
    targets: dict[str, str],
    server_for: Callable[[str], AbstractContextManager[dict[str, Any]]],
    runs_path: Path,
) -> list[dict[str, Any]]:
    """The trials before the benchmark, the benchmark of every combination (its record in
    `runs_path` as each ends), then the capacity rounds; servers come from `server_for`."""
    records: list[dict[str, Any]] = []

    earlier: dict[str, Path] = {}
    if settings.earlier_rounds > 0:
        earlier = single_request_rounds(combos, settings, out / "models", results_dir(out), server_for, say)

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
    if settings.capacity_rounds > 0:
        capacity_rounds(combos, settings, out / "models", results_dir(out), server_for, say)
    return records


def inference_alone(models: list[str], out: Path) -> None:
    """Each model's runtime called in-process, no HTTP (servebench.bench.inference_alone), in a
    process of its own on the servers' core: results/inference.json. A failure here is reported,
    not fatal."""
    import subprocess
    import sys

    from servebench.launch import server_cpus

    path = results_dir(out) / "inference.json"
    path.unlink(missing_ok=True)
    if not models:
        return
    say(f"== inference alone (the runtime in-process, no HTTP): {', '.join(models)}")
    command = [sys.executable, "-m", "servebench.bench.inference_alone", str(out / "models"), *models]
    cpus = server_cpus()
    done = subprocess.run(
        ["taskset", "-c", cpus, *command] if cpus else command, capture_output=True, text=True, timeout=600
    )
    if done.returncode != 0:
        say(f"   could not measure: {done.stderr.strip()[-500:]}")
        return
    records = json.loads(done.stdout)
    for r in records:
        if "error" in r:
            say(f"   {r['model']}: {r['error']}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records, indent=2) + "\n")


def soak(settings: RunSettings, out: Path, frameworks: list[str]) -> None:
    from servebench.bench.soak import run_soak

    results = []
    for i, framework in enumerate(frameworks, 1):
        level, seconds = settings.soak.concurrency, settings.soak.duration_s
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


def generator_check(settings: RunSettings, out: Path, targets: dict[str, str]) -> None:
    """The load generator against /health, the cheapest endpoint, of the server whose endpoint has
    the highest capacity, paced at multiples of that capacity (results/generator.json): it holds
    when the generator outpaces the fastest endpoint measured. A failure here is reported, not
    fatal. Without a capacity (a run without a ladder), the highest closed-loop peak stands in."""
    from servebench.bench.cpus import client_cpus
    from servebench.bench.generators import self_measurement

    summaries = [s for s in result_files.read_summaries(results_dir(out)) if s["status"] == "ok"]
    peaks = [(float((s.get("capacity") or {}).get("rate") or 0.0), s["framework"]) for s in summaries]
    basis = "capacity"
    if not peaks or max(peaks)[0] <= 0:
        peaks = [
            (max((x.get("achieved_rate", 0.0) for x in s.get("load", [])), default=0.0), s["framework"])
            for s in summaries
        ]
        basis = "closed-loop peak"
    if not peaks or max(peaks)[0] <= 0:
        return
    peak, framework = max(peaks)
    multiples, step_s = list(settings.generator.rate_multiples), settings.generator.step_s
    say(f"== load generator self-measurement: /health of {framework} at {multiples} × {peak:,.0f} req/s ({basis})")
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
    path.write_text(json.dumps({**doc, "basis": basis}, indent=2) + "\n")


def report(profile: dict[str, Any], out: Path, compare: Path | None = None) -> Path:
    say("== report: 05_report → report.html")
    params = profile_parameters(profile, "05_report", out)
    if compare is not None:
        params["compare_dir"] = str(compare)
    executed = run_notebook("05_report", out, params)
    html = out / "report.html"
    from servebench.report.html import notebook_to_html

    notebook_to_html(executed, html)
    return html
