#!/usr/bin/env bash
# Stop a server started by servers/start.sh, with every process it spawned.
#   servers/stop.sh ID | --all
set -euo pipefail
# shellcheck source=servers/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

[ $# -eq 1 ] || die "usage: servers/stop.sh ID | --all   (ID: $SERVER_IDS)"
ids=$1
[ "$1" = --all ] && ids=$SERVER_IDS
for id in $ids; do
  known_id "$id"
  pidfile=$RUN_DIR/$id.pid
  [ -f "$pidfile" ] || { [ "$1" = --all ] || echo "$id is not running"; continue; }
  stop_pid "$(cat "$pidfile")"
  rm -f "$pidfile"
  echo "$id stopped"
done
