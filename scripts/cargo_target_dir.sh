#!/usr/bin/env bash
# Prints the cargo target directory shared by every clone on this machine for the Rust workspace
# as locked: keyed by rust/Cargo.lock, the workspace manifest and the toolchain, so that a change
# of either starts a directory of its own. See scripts/bootstrap.sh.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${SERVEBENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/servebench}
key=$(cat "$root/rust/Cargo.lock" "$root/rust/Cargo.toml" <(rustc -vV) | sha256sum | cut -c1-16)
mkdir -p "$cache/cargo-target"
echo "$cache/cargo-target/$key"
