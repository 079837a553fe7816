#!/usr/bin/env bash
# Start a servebench server in the background and return once /health answers.
#   servers/start.sh ID PORT        ID: a folder under servers/ (servers/ID/server.yaml)
# Environment: SERVEBENCH_MODELS_DIR (default outputs/models), SERVEBENCH_OUT (outputs/),
#   SERVEBENCH_SERVER_CPUS (taskset list; default core 0 on a machine with two or more cores),
#   SERVEBENCH_HOST (default 127.0.0.1), SERVEBENCH_START_TIMEOUT (seconds, default 120).
# Writes outputs/run/ID.pid, ID.log and ID.json (pid, port, start-up seconds, command).
set -euo pipefail
# shellcheck source=servers/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
exec "$PY" -m servebench.launch start "$@"
