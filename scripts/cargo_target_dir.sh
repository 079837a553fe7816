#!/usr/bin/env bash
# Prints the cargo target directory shared by every clone on this machine for the Rust workspace:
# one per toolchain. Cargo fingerprints every dependency by its version and features, so a change
# of Cargo.lock rebuilds only what changed instead of starting a directory of its own, and every
# workspace member is keyed by its path, so clones never share those. Builds in it hold the
# directory's lock (see scripts/bootstrap.sh and run_tests.sh).
set -euo pipefail
cache=${SERVEBENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/servebench}
key=$(rustc -vV | sha256sum | cut -c1-16)
mkdir -p "$cache/cargo-target"
echo "$cache/cargo-target/$key"
