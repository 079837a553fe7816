#!/usr/bin/env bash
# Start a servebench server in the background and return once /health answers.
#   servers/start.sh ID PORT        ID: fastapi | flask | flask-dev | rust-ort | rust-tract
# Environment: SERVEBENCH_MODELS_DIR (default outputs/models), SERVEBENCH_OUT (outputs/),
#   SERVEBENCH_SERVER_CPUS (taskset list; default core 0 on a machine with two or more cores),
#   SERVEBENCH_HOST (default 127.0.0.1), SERVEBENCH_START_TIMEOUT (seconds, default 120).
# Writes outputs/run/ID.pid, ID.log and ID.json (pid, port, start-up seconds, command).
set -euo pipefail
# shellcheck source=servers/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

[ $# -eq 2 ] || die "usage: servers/start.sh ID PORT   (ID: $SERVER_IDS)"
id=$1 port=$2
known_id "$id"
[[ $port =~ ^[0-9]+$ ]] && [ "$port" -ge 1 ] && [ "$port" -le 65535 ] || die "port must be 1-65535, got '$port'"
host=${SERVEBENCH_HOST:-127.0.0.1}
models=$(cd "${SERVEBENCH_MODELS_DIR:-$OUT/models}" 2>/dev/null && pwd) \
  || die "$id: models directory ${SERVEBENCH_MODELS_DIR:-$OUT/models} does not exist: run ./run_all.sh (or notebooks 01-03) first"
timeout=${SERVEBENCH_START_TIMEOUT:-120}
mkdir -p "$RUN_DIR"
pidfile=$RUN_DIR/$id.pid log=$RUN_DIR/$id.log

if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  die "$id is already running (pid $(cat "$pidfile")); stop it with servers/stop.sh $id"
fi
if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then
  die "$id: port $port on $host is already in use; choose another port"
fi

if [ -n "${SERVEBENCH_SERVER_CPUS+x}" ]; then
  cpus=$SERVEBENCH_SERVER_CPUS
elif [ "$(nproc)" -ge 2 ]; then
  cpus=0
else
  cpus=""
fi
pin=()
[ -n "$cpus" ] && pin=(taskset -c "$cpus")

py=$ROOT/.venv/bin
export SERVEBENCH_MODELS_DIR=$models PORT=$port SERVEBENCH_HOST=$host PYTHONUNBUFFERED=1
case $id in
  fastapi)
    cmd=("$py/uvicorn" servebench.serving.fastapi_app:create_app --factory --host "$host" --port "$port"
         --loop uvloop --http httptools --workers 1 --no-access-log --log-level warning
         --timeout-keep-alive 30 --backlog 2048) ;;
  flask)
    cmd=("$py/gunicorn" --config python:servebench.serving.gunicorn_conf
         "servebench.serving.flask_app:create_app()") ;;
  flask-dev)
    cmd=("$py/flask" --app "servebench.serving.flask_app:create_dev_app()" run
         --host "$host" --port "$port" --no-reload --no-debugger --with-threads) ;;
  rust-ort | rust-tract)
    bin=$ROOT/rust/target/release/servebench-${id#rust-}
    [ -x "$bin" ] || die "$id: $bin is not built; run scripts/bootstrap.sh"
    if [ "$id" = rust-ort ]; then
      ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$("$py/python" -m servebench.ort_dylib)} \
        || die "$id: cannot find libonnxruntime in the Python environment; run scripts/bootstrap.sh"
      export ORT_DYLIB_PATH
    fi
    cmd=("$bin" --host "$host" --port "$port" --models-dir "$models") ;;
esac
[ -x "${cmd[0]}" ] || die "$id: ${cmd[0]} not found; run scripts/bootstrap.sh"

pid=""
# If we are interrupted before the server is up, take it down with us.
trap '[ -n "$pid" ] && stop_pid "$pid"; rm -f "$pidfile"; exit 130' INT TERM
started=$(date +%s.%N)
setsid "${pin[@]}" "${cmd[@]}" >"$log" 2>&1 < /dev/null &
pid=$!
echo "$pid" > "$pidfile"

deadline=$(( $(date +%s) + timeout ))
until curl -fsS -o /dev/null --max-time 2 "http://$host:$port/health" 2>/dev/null; do
  if ! kill -0 "$pid" 2>/dev/null; then
    rm -f "$pidfile"
    die "$id failed to start (exit before /health answered). Last lines of $log:
$(tail -n 20 "$log")"
  fi
  if [ "$(date +%s)" -ge "$deadline" ]; then
    stop_pid "$pid"; rm -f "$pidfile"
    die "$id did not answer /health on $host:$port within ${timeout}s. Last lines of $log:
$(tail -n 20 "$log")"
  fi
  sleep 0.05
done
ready=$(date +%s.%N)
trap - INT TERM
startup=$(awk -v a="$started" -v b="$ready" 'BEGIN { printf "%.3f", b - a }')
printf '{"id": "%s", "pid": %s, "host": "%s", "port": %s, "cpus": "%s", "startup_seconds": %s, "log": "%s", "command": "%s"}\n' \
  "$id" "$pid" "$host" "$port" "$cpus" "$startup" "$log" "${cmd[*]}" > "$RUN_DIR/$id.json"
echo "$id ready on http://$host:$port (pid $pid, cpus ${cpus:-all}, start-up ${startup}s)"
