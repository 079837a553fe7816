#!/usr/bin/env bash
# An app behind nginx (nginx-front.conf beside this file), as uvicorn's deployment guide puts it:
# nginx on HOST:PORT buffers each request whole, times out slow and idle clients and bounds request
# heads, and passes requests to the app over kept-alive connections on a private address.
#   nginx-front.sh [--name NAME] [--own-session] HOST PORT -- COMMAND [ARG...]
# COMMAND starts the app; in its arguments @SOCKET@ becomes a Unix socket in a private run folder
# (for a server that can listen on one), @APP_PORT@ a free port on 127.0.0.1 (for one that
# cannot); nginx's upstream is that address. The app must keep idle connections open longer than
# nginx's upstream keepalive_timeout (30 s). nginx starts once the app answers GET /health there,
# so that it never logs a refused upstream during start-up. When either process ends, the other is
# stopped; the launcher's SIGTERM to the process group reaches both.
# --own-session: the app leads a session of its own, for an app that, as its session's leader,
# stops everything it started in that session (Ray's main.py); it is sent SIGTERM on the way out,
# as the launcher would send it.
set -euo pipefail
name=app own_session=
while [ $# -gt 0 ]; do
  case $1 in
    --name) name=$2; shift 2 ;;
    --own-session) own_session=1; shift ;;
    *) break ;;
  esac
done
[ $# -ge 4 ] && [ "$3" = -- ] || {
  echo "usage: $0 [--name NAME] [--own-session] HOST PORT -- COMMAND [ARG...]" >&2
  exit 2
}
host=$1 port=$2
shift 3
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
command -v nginx >/dev/null || { echo "$name: nginx not found; run scripts/bootstrap.sh" >&2; exit 1; }
run=$(mktemp -d "${TMPDIR:-/tmp}/servebench-$name.XXXXXX")
app= front=
cleanup() {
  local pids
  # nginx, then its run folder, then the app: an app slower to stop than the launcher's grace
  # period (a Ray cluster) would otherwise leave the folder behind when SIGKILL ends this script.
  if [ -n "$front" ]; then
    kill "$front" 2>/dev/null || true
    wait "$front" 2>/dev/null || true
  fi
  rm -rf "$run"
  if [ -n "$own_session" ] && [ -n "$app" ]; then
    kill -TERM "$app" 2>/dev/null || true
  fi
  pids=$(jobs -p)
  [ -z "$pids" ] || kill $pids 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

case " $* " in
  *@SOCKET@*)
    address=$run/app.sock upstream=unix:$run/app.sock probe=(--unix-socket "$run/app.sock" http://app/health) ;;
  *@APP_PORT@*)
    # A port the kernel has just handed out and taken back: free, unless something takes it in
    # the moment before the app binds it, which the app then reports.
    address=$("$here/../.venv/bin/python" -c \
      'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    upstream=127.0.0.1:$address probe=("http://127.0.0.1:$address/health") ;;
  *) echo "$name: the command names no @SOCKET@ or @APP_PORT@ for the app to listen on" >&2; exit 2 ;;
esac
command=()
for arg in "$@"; do
  arg=${arg//@SOCKET@/$address}
  command+=("${arg//@APP_PORT@/$address}")
done

if [ -n "$own_session" ]; then
  setsid "${command[@]}" &
else
  "${command[@]}" &
fi
app=$!
until curl -fsS -o /dev/null --max-time 2 "${probe[@]}" 2>/dev/null; do
  kill -0 "$app" 2>/dev/null || { wait "$app"; exit $?; }
  sleep 0.05
done

sed -e "s|@RUN@|$run|g" -e "s|@HOST@|$host|g" -e "s|@PORT@|$port|g" -e "s|@UPSTREAM@|$upstream|g" \
  "$here/nginx-front.conf" > "$run/nginx.conf"
# Workers run as this user, who owns the socket (as root, nginx would drop to nobody).
nginx -p "$run" -c "$run/nginx.conf" -e stderr -g "daemon off; user $(id -un) $(id -gn);" &
front=$!
wait -n
