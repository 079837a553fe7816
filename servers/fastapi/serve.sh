#!/usr/bin/env bash
# FastAPI on uvicorn (uvloop, httptools, one worker) behind nginx (nginx.conf beside this file).
#   serve.sh VENV HOST PORT     (the launcher runs it from server.yaml)
# uvicorn listens on a Unix socket in a private run folder; nginx starts once the app answers
# there, so that nginx never logs a refused upstream during start-up. When either process ends,
# the other is stopped: the launcher's SIGTERM to the process group reaches both.
set -euo pipefail
[ $# -eq 3 ] || { echo "usage: $0 VENV HOST PORT" >&2; exit 2; }
venv=$1 host=$2 port=$3
dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
command -v nginx >/dev/null || { echo "fastapi: nginx not found; run scripts/bootstrap.sh" >&2; exit 1; }
run=$(mktemp -d "${TMPDIR:-/tmp}/servebench-fastapi.XXXXXX")
cleanup() {
  local pids
  pids=$(jobs -p)
  [ -z "$pids" ] || kill $pids 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$run"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

# Keep-alive longer than nginx's upstream keepalive_timeout (30 s).
"$venv/bin/uvicorn" --app-dir "$dir" app:create_app --factory --uds "$run/uvicorn.sock" \
  --loop uvloop --http httptools --workers 1 --no-access-log --log-level warning \
  --timeout-keep-alive 75 --backlog 2048 &
app=$!
until curl -fsS -o /dev/null --max-time 2 --unix-socket "$run/uvicorn.sock" http://app/health 2>/dev/null; do
  kill -0 "$app" 2>/dev/null || { wait "$app"; exit $?; }
  sleep 0.05
done

sed -e "s|@RUN@|$run|g" -e "s|@HOST@|$host|g" -e "s|@PORT@|$port|g" "$dir/nginx.conf" > "$run/nginx.conf"
# Workers run as this user, who owns the socket (as root, nginx would drop to nobody).
nginx -p "$run" -c "$run/nginx.conf" -e stderr -g "daemon off; user $(id -un) $(id -gn);" &
wait -n
