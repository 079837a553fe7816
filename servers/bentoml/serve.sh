#!/usr/bin/env bash
# BentoML: `bentoml serve` of service.py's Titanic service: BentoML's circus arbiter and the one
# worker its @bentoml.service config asks for.
#   serve.sh VENV HOST PORT [OPTION...]   (the launcher runs it from server.yaml; the options go
#                                          to `bentoml serve`, e.g. its keep-alive behind nginx)
# - BENTOML_HOME: BentoML keeps a home folder (model and Bento stores, Prometheus' multiprocess
#   files); it goes in a private run folder, removed on exit, rather than in ~/bentoml. TMPDIR
#   too: BentoML makes temporary folders (bentoml-uds-*, bentoml-client-*) that a killed server
#   would leave in /tmp.
# - BENTOML_DO_NOT_TRACK: no usage data leaves the machine.
# - BENTOML_CONTAINERIZED, as BentoML's own container image sets it: circus does not respawn a
#   worker that dies, and the supervisor (here the launcher) restarts the server. With respawn, a
#   bad model file restarts the worker in a loop instead of stopping the server.
# When the server stops by itself, its error is repeated last: the arbiter's own traceback
# ("No active process found for watcher") otherwise buries the worker's. The launcher's SIGTERM to
# the process group reaches the arbiter, which stops its worker; circus starts the worker in a
# session of its own, so service.py ties it to the arbiter's life (see die_with_arbiter).
set -euo pipefail
[ $# -ge 3 ] || { echo "usage: $0 VENV HOST PORT [OPTION...]" >&2; exit 2; }
venv=$1 host=$2 port=$3
shift 3
dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
run=$(mktemp -d "${TMPDIR:-/tmp}/servebench-bentoml.XXXXXX")
cleanup() {
  # The folder first: past the launcher's grace period a SIGKILL would leave it behind.
  rm -rf "$run"
  local pids
  pids=$(jobs -p)
  [ -z "$pids" ] || kill $pids 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

mkdir "$run/tmp"
export BENTOML_HOME=$run/home TMPDIR=$run/tmp BENTOML_DO_NOT_TRACK=true BENTOML_CONTAINERIZED=true
# tee ignores the launcher's SIGTERM: it drains the output until the arbiter and worker have
# closed it, so that neither writes its last lines into a broken pipe while shutting down.
exec 3> >(trap '' TERM INT; exec tee "$run/output")
copier=$!
"$venv/bin/bentoml" serve service:Titanic --working-dir "$dir" --host "$host" --port "$port" "$@" >&3 2>&1 &
server=$!
exec 3>&-
status=0
wait "$server" || status=$?
wait "$copier" || true
if [ "$status" -ne 0 ]; then
  cause=$(grep -E '^[A-Za-z_.]*(Error|Exception): ' "$run/output" | grep -v 'No active process found' | tail -n 1 || true)
  echo "bentoml exited with status $status${cause:+: $cause}" >&2
fi
exit "$status"
