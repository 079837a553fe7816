#!/usr/bin/env bash
# servebench end to end: bootstrap → train → export → build the Rust servers → benchmark every
# framework × model combination → report (outputs/report.html).
#   ./run_all.sh [--quick] [--frameworks a,b] [--models x,y] [--out DIR] [--soak] [--skip-train]
#                [--target ID=URL ...] [--compare OTHER_OUTPUTS] [--profile FILE]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$root"

for arg in "$@"; do
  case $arg in
    -h | --help)
      # The options are the orchestrator's; on a fresh clone that needs the Python environment first.
      "$root/scripts/bootstrap.sh" --python-only >&2
      exec "$root/.venv/bin/python" -m servebench.cli --help
      ;;
  esac
done

out=$root/outputs
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case ${args[i]} in
    --out) out=${args[i + 1]:-$out} ;;
    --out=*) out=${args[i]#--out=} ;;
  esac
done
export SERVEBENCH_OUT=$out

child=""
cleanup() {
  [ -n "$child" ] && kill -TERM "$child" 2>/dev/null && wait "$child" 2>/dev/null
  "$root/servers/stop.sh" --all >/dev/null 2>&1 || true
}
on_signal() { trap - INT TERM; echo "run_all.sh: interrupted, stopping servers" >&2; cleanup; exit 130; }
trap cleanup EXIT
trap on_signal INT TERM

echo "== bootstrap (virtual environment, Rust servers, load generator)"
started=$SECONDS
"$root/scripts/bootstrap.sh" || { echo "run_all.sh: FAILED at bootstrap (see the message above)" >&2; exit 1; }
# The run lists what each stage took (servebench.stages), the bootstrap among them.
export SERVEBENCH_BOOTSTRAP_S=$((SECONDS - started))

# The orchestrator runs in the background so that this shell can relay signals and clean up.
"$root/.venv/bin/python" -m servebench.cli "$@" &
child=$!
set +e
wait "$child"
status=$?
set -e
child=""
exit "$status"
