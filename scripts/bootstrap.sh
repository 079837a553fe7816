#!/usr/bin/env bash
# Installs everything servebench needs, idempotently: the Python virtual environment from the
# pinned lock, the Rust servers (release build), and the load generators (oha, the native client
# of every measurement; vegeta for the soak test). Quick when nothing changed.
#   scripts/bootstrap.sh [--no-rust] [--no-loadgen]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

UV_VERSION=0.13.9
VEGETA_VERSION=v12.13.0
OHA_VERSION=1.16.0
PYTHON=${PYTHON:-python3.11}
want_rust=1 want_loadgen=1
for arg in "$@"; do
  case $arg in
    --no-rust) want_rust=0 ;;
    --no-loadgen) want_loadgen=0 ;;
    *) echo "bootstrap: unknown option $arg" >&2; exit 2 ;;
  esac
done

step() { printf '\n== bootstrap: %s\n' "$*" >&2; }
fail() { printf 'bootstrap: FAILED: %s\n' "$*" >&2; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }

apt_install() {
  # Debian packages, only when a tool is missing and we may install them.
  [ "$(id -u)" = 0 ] && have apt-get || fail "$* missing; install it with your package manager"
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

python_env() {
  have "$PYTHON" || PYTHON=python3
  "$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11)' 2>/dev/null \
    || fail "Python 3.11 is required (found: $("$PYTHON" --version 2>&1)); set PYTHON=/path/to/python3.11"
  local stamp=.venv/.servebench-lock
  local want
  want=$(cat requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1)
  if [ -x .venv/bin/python ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    return
  fi
  step "Python environment (.venv from requirements.lock)"
  [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv || fail "could not create .venv (apt-get install python3-venv?)"
  .venv/bin/python -m pip install -q "uv==$UV_VERSION" || fail "could not install uv from PyPI"
  # Bytecode compiled once here: every server process (LitServe's workers, Ray's) imports torch
  # and the rest, and without .pyc files (PYTHONDONTWRITEBYTECODE) pays the compile at each start.
  .venv/bin/uv pip sync -q --compile-bytecode --python .venv/bin/python requirements.lock \
    || fail "uv pip sync requirements.lock"
  .venv/bin/uv pip install -q --python .venv/bin/python --no-deps -e . || fail "installing the servebench package"
  .venv/bin/python -m ipykernel install --sys-prefix --name python3 >/dev/null
  echo "$want" > "$stamp"
}

rust_servers() {
  have cargo || fail "cargo not found: install Rust (rustup) to build the Rust servers"
  step "Rust servers (cargo build --release)"
  (cd rust && cargo build --release --locked --quiet) || fail "cargo build --release in rust/"
}

oha_generator() {
  local stamp=.tools/oha.version
  if [ -x .tools/bin/oha ] && [ "$(cat "$stamp" 2>/dev/null)" = "$OHA_VERSION" ]; then
    return
  fi
  have cargo || fail "cargo not found: install Rust (rustup) to build the load generator oha"
  step "load generator (oha $OHA_VERSION from crates.io, cargo install; a few minutes, once)"
  cargo install --locked --quiet "oha@$OHA_VERSION" --root "$root/.tools" \
    || fail "cargo install oha@$OHA_VERSION"
  echo "$OHA_VERSION" > "$stamp"
}

load_generator() {
  oha_generator
  local stamp=.tools/vegeta.version
  if [ -x .tools/bin/vegeta ] && [ "$(cat "$stamp" 2>/dev/null)" = "$VEGETA_VERSION" ]; then
    return
  fi
  step "load generator (vegeta $VEGETA_VERSION, go install)"
  have go || apt_install golang-go
  GOBIN="$root/.tools/bin" GOFLAGS=-mod=mod go install "github.com/tsenart/vegeta/v12@$VEGETA_VERSION" \
    || fail "go install vegeta $VEGETA_VERSION"
  echo "$VEGETA_VERSION" > "$stamp"
}

system_packages() {
  # The Debian packages the server descriptions name (nginx in front of uvicorn, for one).
  local missing=() name
  for name in $(.venv/bin/python -m servebench.registry system-packages); do
    dpkg -s "$name" >/dev/null 2>&1 || missing+=("$name")
  done
  [ ${#missing[@]} -eq 0 ] && return
  step "Debian packages the servers need: ${missing[*]}"
  apt_install "${missing[@]}"
}

have curl || apt_install curl
have taskset || apt_install util-linux
python_env
system_packages
[ "$want_rust" = 1 ] && rust_servers
[ "$want_loadgen" = 1 ] && load_generator
exit 0
