#!/usr/bin/env bash
# FastAPI on uvicorn (asyncio loop, httptools, one worker) behind nginx (servers/nginx-front.sh and
# nginx-front.conf, shared with the other stacks' variants behind nginx).
#   serve.sh VENV HOST PORT     (the launcher runs it from server.yaml)
# uvicorn listens on a Unix socket in nginx-front.sh's private run folder.
set -euo pipefail
[ $# -eq 3 ] || { echo "usage: $0 VENV HOST PORT" >&2; exit 2; }
venv=$1 host=$2 port=$3
dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# Keep-alive longer than nginx's upstream keepalive_timeout (30 s).
exec "$dir/../nginx-front.sh" --name fastapi "$host" "$port" -- \
  "$venv/bin/uvicorn" --app-dir "$dir" app:create_app --factory --uds @SOCKET@ \
  --loop asyncio --http httptools --workers 1 --no-access-log --log-level warning \
  --timeout-keep-alive 75 --backlog 2048
