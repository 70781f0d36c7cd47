#!/usr/bin/env bash
# Re-resolve env/requirements.in into env/requirements.lock, and env/deploy.in into env/deploy.lock at the same
# versions (every version pinned). Commit all four.
# The next ./run-tests or ./vla-il builds a new environment for the new lock.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$ROOT/scripts/setup.sh"   # for uv
UV=$(ls -d "${VLA_IL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vla-il}"/tools/uv-*/bin/uv | tail -n 1)
cd "$ROOT/env"
"$UV" pip compile requirements.in --override overrides.txt \
  --python-version 3.11 --python-platform x86_64-manylinux_2_28 -o requirements.lock
# the robot install (scripts/setup.sh --deploy): its packages at the full environment's versions
"$UV" pip compile deploy.in --override overrides.txt -c requirements.lock \
  --python-version 3.11 --python-platform x86_64-manylinux_2_28 -o deploy.lock
