#!/usr/bin/env bash
# Installs everything servebench needs, idempotently: the Python virtual environment from the
# pinned lock, the Rust servers (release build), and the load generators (oha, the native client
# of every measurement; vegeta for the soak test). Quick when nothing changed.
#   scripts/bootstrap.sh [--no-rust] [--no-loadgen] [--python-only]
#
# Builds are kept in a machine-wide cache ($SERVEBENCH_CACHE, by default ~/.cache/servebench), so
# that another clone on the same machine reuses them: the load generators under a key of their
# version and the toolchain, the Rust dependencies in a cargo target directory of the toolchain
# (scripts/cargo_target_dir.sh: cargo fingerprints each dependency, and keys each workspace member
# by its path, so clones never share those).
# Python packages come from uv's own cache. Deleting the cache only costs a rebuild.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

UV_VERSION=0.13.9
VEGETA_VERSION=v12.13.0
OHA_VERSION=1.16.0
PYTHON=${PYTHON:-python3.11}
CACHE=${SERVEBENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/servebench}
want_rust=1 want_loadgen=1 want_system=1
for arg in "$@"; do
  case $arg in
    --no-rust) want_rust=0 ;;
    --no-loadgen) want_loadgen=0 ;;
    --python-only) want_rust=0 want_loadgen=0 want_system=0 ;;
    *) echo "bootstrap: unknown option $arg" >&2; exit 2 ;;
  esac
done

step() { printf '\n== bootstrap: %s\n' "$*" >&2; }
fail() { printf 'bootstrap: FAILED: %s\n' "$*" >&2; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }
key() { printf '%s\n' "$@" | sha256sum | cut -c1-16; }

apt_install() {
  # Debian packages, only when a tool is missing and we may install them.
  [ "$(id -u)" = 0 ] && have apt-get || fail "$* missing; install it with your package manager"
  # The lock timeout: the generators install beside the rest and may need a package at the same time.
  apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null \
    && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq "$@" >/dev/null
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

own_environments() {
  # The stacks whose pins conflict with the shared environment have their own (a description's
  # `environment`): .venvs/<folder> from the lock in servers/<folder>/, with the servebench
  # package for the shared serving code. Made again only when its lock or pyproject.toml changes.
  local folder lock want stamp
  while read -r folder lock; do
    [ -n "$folder" ] || continue
    stamp=.venvs/$folder/.servebench-lock
    want=$(cat "$lock" pyproject.toml | sha256sum | cut -d' ' -f1)
    if [ -x ".venvs/$folder/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
      continue
    fi
    step "Python environment of $folder (.venvs/$folder from ${lock#"$root"/})"
    rm -rf ".venvs/$folder"
    .venv/bin/uv venv -q --python "$(readlink -f .venv/bin/python)" ".venvs/$folder" \
      || fail "could not create .venvs/$folder"
    .venv/bin/uv pip sync -q --compile-bytecode --python ".venvs/$folder/bin/python" "$lock" \
      || fail "uv pip sync $lock"
    .venv/bin/uv pip install -q --python ".venvs/$folder/bin/python" --no-deps -e . \
      || fail "installing the servebench package into .venvs/$folder"
    echo "$want" > "$stamp"
  done < <(.venv/bin/python -m servebench.registry environments)
}

rust_servers() {
  have cargo || fail "cargo not found: install Rust (rustup) to build the Rust servers"
  step "Rust servers (cargo build --release)"
  local target
  target=$(scripts/cargo_target_dir.sh)
  mkdir -p rust/target/release
  # The lock covers the build and the copy: another clone building beside this one rewrites the
  # shared target's binaries.
  (
    flock 9
    cd rust && CARGO_TARGET_DIR="$target" cargo build --release --locked --quiet \
      || fail "cargo build --release in rust/"
    for bin in $(cargo metadata --no-deps --format-version 1 --offline \
      | ../.venv/bin/python -c 'import json, sys
for p in json.load(sys.stdin)["packages"]:
    print(*(t["name"] for t in p["targets"] if "bin" in t["kind"]))'); do
      cp -f "$target/release/$bin" target/release/"$bin".new && mv -f target/release/"$bin".new target/release/"$bin"
    done
  ) 9>"$target.lock"
}

# Installs a generator into the machine-wide cache under its key, once, and copies it into .tools/bin.
cached_tool() {
  local name=$1 version=$2 dir=$CACHE/tools/$1-$3
  shift 3
  if [ ! -x "$dir/bin/$name" ]; then
    "$@" "$dir.partial" || { rm -rf "$dir.partial"; fail "installing $name $version"; }
    rm -rf "$dir" && mv "$dir.partial" "$dir"
  fi
  mkdir -p .tools/bin
  cp -f "$dir/bin/$name" ".tools/bin/$name"
  echo "$version" > ".tools/$name.version"
}

install_oha() { cargo install --locked --quiet "oha@$OHA_VERSION" --root "$1"; }
install_vegeta() {
  GOBIN="$1/bin" GOFLAGS=-mod=mod go install "github.com/tsenart/vegeta/v12@$VEGETA_VERSION"
}

load_generator() {
  if ! [ -x .tools/bin/oha ] || [ "$(cat .tools/oha.version 2>/dev/null)" != "$OHA_VERSION" ]; then
    have cargo || fail "cargo not found: install Rust (rustup) to build the load generator oha"
    step "load generator (oha $OHA_VERSION from crates.io, cargo install; a few minutes, once per machine)"
    cached_tool oha "$OHA_VERSION" "$(key "$OHA_VERSION" "$(rustc -vV)")" install_oha
  fi
  if ! [ -x .tools/bin/vegeta ] || [ "$(cat .tools/vegeta.version 2>/dev/null)" != "$VEGETA_VERSION" ]; then
    have go || apt_install golang-go
    step "load generator (vegeta $VEGETA_VERSION, go install, once per machine)"
    cached_tool vegeta "$VEGETA_VERSION" "$(key "$VEGETA_VERSION" "$(go version)")" install_vegeta
  fi
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

# The generators build beside the rest: on a fresh machine they and the Rust servers are most of
# the wait, and each ends in a long single-threaded link that the other's compiling can fill.
loadgen=""
trap '[ -z "$loadgen" ] || kill "$loadgen" 2>/dev/null || true' EXIT
if [ "$want_loadgen" = 1 ]; then
  load_generator &
  loadgen=$!
fi
python_env
own_environments
if [ "$want_system" = 1 ]; then
  have curl || apt_install curl
  have taskset || apt_install util-linux
  system_packages
fi
[ "$want_rust" = 1 ] && rust_servers
if [ -n "$loadgen" ]; then
  wait "$loadgen" || fail "installing the load generators (see the message above)"
  loadgen=""
fi
exit 0
