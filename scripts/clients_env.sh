#!/usr/bin/env bash
# The environment of the independent Open Inference Protocol client the tests query every stack
# with (tritonclient, NVIDIA's client of the protocol): .venv-clients, from tests/clients/
# requirements.lock. It has an environment of its own because its pins (greenlet < 3.4,
# ml-dtypes ≤ 0.5.4) conflict with the servers' shared one. Made again only when the lock changes.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
lock=tests/clients/requirements.lock
stamp=.venv-clients/.servebench-lock
want=$(sha256sum "$lock" | cut -d' ' -f1)
if [ -x .venv-clients/bin/python ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
echo "== the Open Inference Protocol client's environment (.venv-clients from $lock)"
rm -rf .venv-clients
.venv/bin/uv venv -q --python "$(readlink -f .venv/bin/python)" .venv-clients
.venv/bin/uv pip sync -q --python .venv-clients/bin/python "$lock"
echo "$want" > "$stamp"
