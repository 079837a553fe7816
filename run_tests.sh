#!/usr/bin/env bash
# The test command: bootstraps what it needs (virtual environment, Rust servers, load generator),
# then lints and runs every test: Python unit tests, the shared contract vectors, the Rust crates,
# parity and contract tests against every server, fuzzing, the hostile corpus, the short load
# test, the fault tests and ./run_all.sh --quick end to end. The fast tier runs first.
#   ./run_tests.sh [pytest arguments]     e.g. ./run_tests.sh -m "not e2e"
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$root"

scratch=$(mktemp -d)
# The suite's servers record themselves under its own outputs folder, so the exit trap stops those
# and never the servers of a ./run_all.sh running beside it in outputs/.
export SERVEBENCH_OUT=$scratch/outputs
trap '"$root/servers/stop.sh" --all >/dev/null 2>&1 || true; rm -rf "$scratch"' EXIT

"$root/scripts/bootstrap.sh"
"$root/scripts/clients_env.sh"

echo "== ruff"
.venv/bin/ruff check src tests servers
.venv/bin/ruff format --check src tests servers

# The fast tier (units, the contract vectors, settings; no server started) first, and nothing
# else when it fails. With pytest arguments the tiers give way to those.
if [ $# -eq 0 ]; then
  echo "== pytest, fast tier"
  .venv/bin/python -m pytest -m "not servers and not e2e" -x -q
fi

echo "== cargo clippy, cargo test (rust/), the engines against briefly trained models"
.venv/bin/python -m servebench.quick_models "$scratch" >/dev/null
target=$(scripts/cargo_target_dir.sh)
(
  # The machine-wide target directory of scripts/bootstrap.sh, under its lock.
  flock 9
  cd rust
  CARGO_TARGET_DIR=$target
  SERVEBENCH_MODELS_DIR="$scratch/models"
  SERVEBENCH_MODELS=$(../.venv/bin/python -m servebench.registry onnx-models)
  # The example packs quick_models wrote, which tests/vectors/v2.json is run against.
  SERVEBENCH_PACKS=$(../.venv/bin/python -m servebench.registry packs "$SERVEBENCH_MODELS_DIR")
  ORT_DYLIB_PATH=$(../.venv/bin/python -m servebench.ort_dylib)
  export CARGO_TARGET_DIR SERVEBENCH_MODELS_DIR SERVEBENCH_MODELS SERVEBENCH_PACKS ORT_DYLIB_PATH
  # The ci profile (rust/Cargo.toml): release's optimisations without its fat LTO, which made
  # linking each test binary slow; the benchmarked binaries are still built with --release.
  cargo clippy --profile ci --locked --all-targets --quiet -- -D warnings
  cargo fmt --check
  cargo test --profile ci --locked --quiet
) 9>"$target.lock"

if [ $# -eq 0 ]; then
  echo "== pytest, servers and end to end (each server up only while its own tests run)"
  .venv/bin/python -m pytest -m "servers or e2e" --durations=40
else
  echo "== pytest $*"
  .venv/bin/python -m pytest "$@"
fi
