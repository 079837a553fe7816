# Shared by start.sh and stop.sh: where things are, and the helpers both need.
# shellcheck shell=bash
SERVERS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$SERVERS_DIR")
OUT=${SERVEBENCH_OUT:-$ROOT/outputs}
RUN_DIR=$OUT/run
SERVER_IDS="fastapi flask flask-dev rust-ort rust-tract"

die() { printf '%s\n' "$*" >&2; exit 1; }

known_id() {
  case " $SERVER_IDS " in *" $1 "*) return 0 ;; esac
  die "unknown server id '$1' (one of: $SERVER_IDS)"
}

# Signal a server's whole process group (it runs under setsid), then wait for it to go.
stop_pid() {
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
}
