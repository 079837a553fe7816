# Shared by start.sh and stop.sh: both hand over to the launcher, which reads the descriptions.
# shellcheck shell=bash
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=$ROOT/.venv/bin/python
[ -x "$PY" ] || { echo "the Python environment is missing: run scripts/bootstrap.sh" >&2; exit 1; }
