#!/usr/bin/env bash
# The test command: bootstraps what it needs (virtual environment, Rust servers, load generator),
# then lints and runs every test: Python unit tests, the shared contract vectors, the Rust crates,
# parity and contract tests against every server, fuzzing, the hostile corpus, the short load
# test, the fault tests and ./run_all.sh --quick end to end.
#   ./run_tests.sh [pytest arguments]     e.g. ./run_tests.sh -m "not e2e"
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$root"

scratch=$(mktemp -d)
trap '"$root/servers/stop.sh" --all >/dev/null 2>&1 || true; rm -rf "$scratch"' EXIT

"$root/scripts/bootstrap.sh"

echo "== ruff"
.venv/bin/ruff check src tests servers
.venv/bin/ruff format --check src tests servers

echo "== cargo clippy, cargo test (rust/), the engines against briefly trained models"
.venv/bin/python -m servebench.quick_models "$scratch" >/dev/null
(
  cd rust
  SERVEBENCH_MODELS_DIR="$scratch/models"
  SERVEBENCH_MODELS=$(../.venv/bin/python -m servebench.registry onnx-models)
  ORT_DYLIB_PATH=$(../.venv/bin/python -m servebench.ort_dylib)
  export SERVEBENCH_MODELS_DIR SERVEBENCH_MODELS ORT_DYLIB_PATH
  cargo clippy --release --locked --all-targets --quiet -- -D warnings
  cargo fmt --check
  cargo test --release --locked --quiet
)

echo "== pytest"
.venv/bin/python -m pytest "$@"
