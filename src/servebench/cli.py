"""./run_all.sh's command line: what to run (the matrix, the profile, targets, the outputs folder),
checked before anything starts, then the run (servebench.run) with signals turned into a clean
stop. Exit codes: 0 every endpoint passed, 1 something failed, 2 the command line is wrong,
130 interrupted."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

from servebench import registry
from servebench.bench.idle import shallow_idle
from servebench.builtin_packs import builtin_packs
from servebench.config import PARAMS_DIR, Combination, Matrix, ProfileError, load_profile
from servebench.notebooks import StepFailed
from servebench.paths import out_dir, results_dir
from servebench.run import (
    benchmark,
    build_builtin_packs,
    builtin_folder,
    generator_check,
    inference_alone,
    install_packs,
    missing_models,
    read_packs,
    report,
    say,
    soak,
    target_combinations,
    train,
)
from servebench.settings import run_settings
from servebench.stages import StageClock


def parse_targets(specs: list[str]) -> dict[str, str]:
    """`--target ID=URL` (repeatable, or comma-separated): server id → base URL."""
    targets: dict[str, str] = {}
    for spec in [part for item in specs for part in item.split(",") if part.strip()]:
        name, sep, url = spec.partition("=")
        if not sep or not name.strip() or not url.strip().startswith(("http://", "https://")):
            raise ValueError(f"--target wants ID=URL, e.g. rust-ort=http://10.0.0.5:8000, not {spec!r}")
        targets[name.strip()] = url.strip().rstrip("/")
    return targets


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
        "--frameworks",
        help="comma-separated subset, e.g. fastapi,rust-ort (the variants marked extra, and those of more "
        "workers than this machine has server cores for, only when named)",
    )
    parser.add_argument(
        "--variants",
        action="store_true",
        help="also every variant marked extra (adaptive batching, nginx in front, Flask's development server): "
        "a run about twice as long",
    )
    parser.add_argument(
        "--models", help="comma-separated subset, e.g. pytorch_onnx,lightgbm_onnx (model packs by their names too)"
    )
    parser.add_argument(
        "--model-pack",
        action="append",
        default=[],
        type=Path,
        metavar="DIR",
        help="also benchmark your own model: a folder with model.onnx and sample.csv (or sample.parquet), "
        "and optionally model.yaml (repeatable; docs/model-packs.md)",
    )
    parser.add_argument("--batch", type=int, metavar="N", help="rows per request (default 1)")
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
        if args.batch is not None:
            profile.setdefault("notebooks", {}).setdefault("04_benchmark", {})["batch"] = args.batch
        settings = run_settings(profile)
    except ProfileError as exc:
        parser.error(str(exc))
    out = out_dir(args.out)
    os.environ["SERVEBENCH_OUT"] = str(out)
    builtins = builtin_packs()
    packs, refused = read_packs(args.model_pack, reserved={b.name for b in builtins})
    for failure in refused:
        say(f"run_all.sh: {failure['reason']}")
    matrix = Matrix.load(tuple(registry.pack_spec(p.name, p.label) for p in [*builtins, *packs]))
    gone = {r["model"] for r in refused}

    def split(text: str | None) -> list[str] | None:
        """A comma-separated list; the names of refused packs are dropped (they were reported)."""
        return [s.strip() for s in text.split(",") if s.strip() and s.strip() not in gone] if text else None

    try:
        targets = parse_targets(args.target)
        if targets and args.frameworks:
            raise ValueError("--target and --frameworks do not go together: the targets are the servers")
        combos = [] if targets else matrix.combinations(split(args.frameworks), split(args.models), args.variants)
        if args.models:
            matrix.combinations(None, split(args.models))  # checks the names
    except ValueError as exc:
        say(f"run_all.sh: {exc}")
        return 2
    if args.compare is not None and not (args.compare / "results").is_dir():
        say(f"run_all.sh: --compare {args.compare}: no results/ folder there (the outputs folder of an earlier run)")
        return 2
    titanic = {m.name for m in registry.models()}
    named = split(args.models)
    if args.models and not named:
        say("run_all.sh: nothing to benchmark (every model pack was refused)")
        return 1
    # The models this run needs: --models naming only packs trains nothing of Titanic's.
    wanted = {c.model for c in combos} if not targets else set(named or matrix.models)
    needs_training = bool(wanted & titanic)
    to_build = [b for b in builtins if b.name in wanted]
    if args.skip_train:
        # A built-in pack never trained in this outputs folder is left out, unless --models names it.
        untrained = {
            b.name for b in to_build if not builtin_folder(out, b.name).is_dir() and b.name not in (named or [])
        }
        for name in sorted(untrained):
            say(f"run_all.sh: --skip-train: the built-in pack {name} was never trained in {out}; left out")
        to_build = [b for b in to_build if b.name not in untrained]
        combos = [c for c in combos if c.model not in untrained]
        missing = missing_models(out, [Combination("", m) for m in sorted(wanted & titanic)]) if needs_training else []
        missing += [f"builtin/{b.name}" for b in to_build if not builtin_folder(out, b.name).is_dir()]
        if missing:
            say(
                f"run_all.sh: --skip-train, but {out / 'models'} lacks {', '.join(missing)}; "
                f"run once without --skip-train (with the same --out) to train and export the models"
            )
            return 2
    if not combos and not targets:
        say("run_all.sh: nothing to benchmark" + (" (every model pack was refused)" if refused else ""))
        return 1 if refused else 2
    clock = StageClock(results_dir(out))
    try:
        if needs_training and not args.skip_train:
            with clock.stage("training and export"):
                train(profile, out)
        with clock.stage("built-in model packs"):
            packs = [*build_builtin_packs(to_build, out, rebuild=not args.skip_train), *packs]
        install_packs(packs, out)
        if targets:
            combos = target_combinations(targets, matrix, split(args.models))
            if not combos:
                known = ", ".join(matrix.models)
                raise StepFailed(f"the targets {', '.join(targets)} serve none of the models {known}")
        say(f"servebench: profile {profile_path.name}, outputs in {out}, {len(combos)} combinations")
        with shallow_idle(settings.hold_cpu_idle) as idle:
            say(f"   CPU idle states: {idle}")
            with clock.stage("inference alone"):
                inference_alone(sorted({c.model for c in combos}), out)
            with clock.stage("benchmarks"):
                records = benchmark(profile, settings, out, combos, targets)
            if any(r["status"] == "ok" for r in records):
                with clock.stage("load generator check"):
                    generator_check(settings, out, targets)
            if args.soak:
                # The long load test is about servers, so without --frameworks it covers every one,
                # flask-dev included.
                with clock.stage("soak"):
                    soak(settings, out, split(args.frameworks) or list(matrix.frameworks))
        with clock.stage("report"):
            html = report(profile, out, args.compare.resolve() if args.compare else None)
    except StepFailed as exc:
        say(f"run_all.sh: FAILED: {exc}")
        return 1
    except KeyboardInterrupt:
        say("run_all.sh: interrupted; servers stopped")
        return 130
    records = [*refused, *records]
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
