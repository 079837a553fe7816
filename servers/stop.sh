#!/usr/bin/env bash
# Stop a server started by servers/start.sh, with every process it spawned.
#   servers/stop.sh ID | --all
set -euo pipefail
# shellcheck source=servers/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
exec "$PY" -m servebench.launch stop "$@"
