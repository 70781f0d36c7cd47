#!/usr/bin/env bash
# Bootstrap vla-il's environment. Idempotent: a second run with nothing changed does nothing and
# takes about a second. Called by ./vla-il and ./run-tests; safe to run by hand.
#
#   1. checks prerequisites (Python 3.11, a C++ compiler, EGL for headless MuJoCo, disk);
#   2. builds the Python environment from env/requirements.lock into a cache OUTSIDE the clone,
#      keyed by the lock's hash ($VLA_IL_CACHE, default ~/.cache/vla-il), so every clone reuses it;
#      ROS 2 comes from the `ros-*` wheels unless a system ROS 2 is sourced (ROS_DISTRO set);
#   3. repairs the wheels' CMake files that name the build machine's include paths;
#   4. links it as ./.venv and builds ros2_ws with colcon when its sources changed.
# An interrupted run is recovered by the next one: nothing is marked done before it is complete.
#
#   scripts/setup.sh --deploy   a robot's install instead: the deploy graph (camera_node, robot_adapter,
#       policy_node, intervention_mux) with ONNX Runtime, NumPy, OpenCV and PyYAML only (env/deploy.lock: no
#       PyTorch, lerobot, transformers or MuJoCo), linked as ./.venv-deploy, the ROS packages installed (copied,
#       not linked to the sources) into ros2_ws/deploy/install. Use it with: source scripts/env.sh --deploy
set -euo pipefail

DEPLOY=""
for arg in "$@"; do
  case "$arg" in
    --deploy) DEPLOY=1 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) printf '[setup] error: unknown option %s (see --help)\n' "$arg" >&2; exit 2 ;;
  esac
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
UV_VERSION=0.13.8
SETUP_REVISION=1   # bump when this script changes how the environment is built
MIN_FREE_GB=15     # the environment is about 9 GB (CUDA builds of torch), plus the download cache
[ -n "$DEPLOY" ] && MIN_FREE_GB=2   # the deploy environment: a few hundred MB

say() { printf '[setup] %s\n' "$*" >&2; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

CACHE=${VLA_IL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vla-il}
LOCK="$ROOT/env/requirements.lock"
[ -n "$DEPLOY" ] && LOCK="$ROOT/env/deploy.lock"
[ -f "$LOCK" ] || die "missing $LOCK (is this a complete clone of vla-il?)"

# --- which ROS 2: a sourced system install, or the PyPI wheels --------------------------------
SYSTEM_ROS=""
if [ -n "${ROS_DISTRO:-}" ] && [ "${VLA_IL_USE_SYSTEM_ROS:-1}" != "0" ]; then
  [ -f "/opt/ros/$ROS_DISTRO/setup.bash" ] || die "ROS_DISTRO=$ROS_DISTRO but /opt/ros/$ROS_DISTRO/setup.bash does not exist (unset ROS_DISTRO to use the ROS 2 wheels instead)"
  SYSTEM_ROS="$ROS_DISTRO"
fi

# --- prerequisites: one clear line each --------------------------------------------------------
if [ -n "$SYSTEM_ROS" ]; then
  PYTHON=${VLA_IL_PYTHON:-python3}   # must be the Python the system ROS was built for
else
  PYTHON=${VLA_IL_PYTHON:-python3.11}
fi
command -v "$PYTHON" >/dev/null 2>&1 || die "no '$PYTHON' on PATH: vla-il needs Python 3.11 (set VLA_IL_PYTHON to its path)"
PY_VERSION=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) || die "'$PYTHON' does not run"
if [ -z "$SYSTEM_ROS" ] && [ "$PY_VERSION" != "3.11" ]; then
  die "'$PYTHON' is Python $PY_VERSION, vla-il needs 3.11 (set VLA_IL_PYTHON to a python3.11)"
fi
"$PYTHON" -c 'import venv, ensurepip' 2>/dev/null || die "Python $PY_VERSION has no venv/ensurepip module (Debian/Ubuntu: apt-get install python$PY_VERSION-venv)"
command -v c++ >/dev/null 2>&1 || command -v g++ >/dev/null 2>&1 || die "no C++ compiler (needed by colcon to build ros2_ws/src/vla_il_msgs): install g++ (Debian/Ubuntu: apt-get install g++)"
# ldconfig lives in /sbin, which a normal user's PATH often lacks
LDCONFIG=$(command -v ldconfig || echo /sbin/ldconfig)
if [ -z "$DEPLOY" ] && [ "${MUJOCO_GL:-egl}" = "egl" ] && ! { "$LDCONFIG" -p 2>/dev/null | grep -q 'libEGL.so.1'; }; then
  die "no libEGL.so.1: MuJoCo renders headless through EGL (MUJOCO_GL=egl). Install Mesa (Debian/Ubuntu: apt-get install libegl1 libgl1-mesa-dri) or set MUJOCO_GL=osmesa"
fi

mkdir -p "$CACHE" || die "cannot create the cache directory $CACHE (set VLA_IL_CACHE)"

hash_of() { sha256sum | cut -c1-16; }
if [ -n "$SYSTEM_ROS" ]; then
  REQS=$(grep -v -E '^ros-' "$LOCK")       # the system provides ROS 2 itself
  ENV_KIND="sysros-$SYSTEM_ROS"
else
  REQS=$(cat "$LOCK")
  ENV_KIND="rosw"
fi
[ -n "$DEPLOY" ] && ENV_KIND="deploy-$ENV_KIND"
KEY=$(printf '%s\n%s\n%s\n%s\n' "$REQS" "$SETUP_REVISION" "$PY_VERSION" "$ENV_KIND" | hash_of)
VENV="$CACHE/venvs/py$PY_VERSION-$ENV_KIND-$KEY"
READY="$VENV/.vla-il-ready"

# Only one setup builds the environment at a time; a second one waits for it.
exec 9>"$CACHE/.setup.lock"
if ! flock -n 9; then
  say "another setup is building the environment; waiting for it"
  flock 9
fi

# --- the Python environment --------------------------------------------------------------------
if [ ! -f "$READY" ]; then
  avail_kb=$(df -Pk "$CACHE" | awk 'NR==2 {print $4}')
  if [ "${avail_kb:-0}" -lt $((MIN_FREE_GB * 1024 * 1024)) ]; then
    die "only $((avail_kb / 1024 / 1024)) GB free under $CACHE; the environment needs about $MIN_FREE_GB GB (set VLA_IL_CACHE to a larger disk)"
  fi
  started=$(date +%s)
  UV="$CACHE/tools/uv-$UV_VERSION/bin/uv"
  if [ ! -x "$UV" ]; then
    say "installing uv $UV_VERSION (the package installer) into $CACHE/tools"
    # Built aside and renamed into place, so an interrupted install is never mistaken for a good one.
    rm -rf "$CACHE/tools/uv-$UV_VERSION" "$CACHE/tools/uv-$UV_VERSION.partial"
    "$PYTHON" -m venv "$CACHE/tools/uv-$UV_VERSION.partial" || die "could not create a virtual environment with $PYTHON"
    "$CACHE/tools/uv-$UV_VERSION.partial/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION" \
      || die "could not install uv $UV_VERSION from the package index (network?)"
    mv "$CACHE/tools/uv-$UV_VERSION.partial" "$CACHE/tools/uv-$UV_VERSION"
  fi
  if [ -d "$VENV" ]; then
    say "removing an incomplete environment left by an interrupted setup: $VENV"
    rm -rf "$VENV"
  fi
  say "creating the Python $PY_VERSION environment $VENV"
  say "installing $(printf '%s\n' "$REQS" | grep -c '==') pinned packages from env/requirements.lock (first time: several GB of downloads)"
  export UV_CACHE_DIR="${UV_CACHE_DIR:-$CACHE/uv}"
  # the machine's own certificate store, as pip and curl use it (a company's TLS proxy adds its CA there)
  export UV_SYSTEM_CERTS="${UV_SYSTEM_CERTS:-1}"
  "$UV" venv --quiet --python "$PYTHON" "$VENV" || die "could not create $VENV"
  # --no-deps: the lock is complete; letting the installer re-resolve would bring back packages the
  # lock leaves out on purpose (see env/overrides.txt). `install`, not `sync`: the ROS wheels carry a
  # second, egg-info distribution each, which sync would uninstall together with the package's files.
  # (the per-package "+ name==version" lines are left out: the lock already lists them)
  printf '%s\n' "$REQS" | VIRTUAL_ENV="$VENV" "$UV" pip install --no-deps -r - 2>&1 | grep -v -E '^ \+ ' >&2 \
    || die "package installation failed (see above); run again to retry"
  if [ -z "$SYSTEM_ROS" ]; then
    "$VENV/bin/python" "$ROOT/scripts/repair_ros_cmake.py" "$VENV" | sed 's/^/[setup] /' >&2
  fi
  printf 'lock=%s\ncreated=%s\nseconds=%s\n' "$KEY" "$(date -u +%FT%TZ)" "$(( $(date +%s) - started ))" > "$READY"
  say "environment ready in $(( $(date +%s) - started )) s ($(du -sh "$VENV" 2>/dev/null | cut -f1))"
fi
flock -u 9

LINK=".venv"
[ -n "$DEPLOY" ] && LINK=".venv-deploy"
if [ "$(readlink "$ROOT/$LINK" 2>/dev/null)" != "$VENV" ]; then
  [ -e "$ROOT/$LINK" ] && [ ! -L "$ROOT/$LINK" ] && die "$ROOT/$LINK exists and is not the link setup manages; move it away"
  ln -sfn "$VENV" "$ROOT/$LINK"
  say "linked $LINK -> $VENV"
fi

# --- the ROS 2 workspace -----------------------------------------------------------------------
if [ -n "$DEPLOY" ]; then
  # shellcheck source=env.sh
  source "$ROOT/scripts/env.sh" --deploy --no-workspace
  WS="$ROOT/ros2_ws/deploy"
  BUILD_ARGS=(--base-paths "$ROOT/ros2_ws/src" --packages-select vla_il_msgs vla_il_core vla_il_nodes vla_il)
else
  # shellcheck source=env.sh
  source "$ROOT/scripts/env.sh" --no-workspace
  WS="$ROOT/ros2_ws"
  BUILD_ARGS=(--symlink-install)
fi
WS_KEY=$( { echo "$KEY"; cd "$ROOT" && find ros2_ws/src launch config -type f -not -name '*.pyc' -print0 2>/dev/null \
  | sort -z | xargs -0 sha256sum; } | hash_of)
if [ "$(cat "$WS/build/.vla-il-env" 2>/dev/null)" != "$KEY" ]; then
  # CMake caches absolute paths into the environment: a new environment needs a clean build.
  rm -rf "$WS/build" "$WS/install"
fi
if [ "$(cat "$WS/install/.vla-il-stamp" 2>/dev/null)" != "$WS_KEY" ]; then
  say "building the ROS 2 workspace (colcon): vla_il_msgs, vla_il_core, vla_il_nodes, vla_il${DEPLOY:+ (deploy install: $WS/install)}"
  started=$(date +%s)
  rm -f "$WS/install/.vla-il-stamp"
  [ -n "$DEPLOY" ] && rm -rf "$WS/install"   # copies, not links: a file the sources dropped must go too
  mkdir -p "$WS/log"
  [ -n "$DEPLOY" ] && touch "$WS/COLCON_IGNORE"   # the development workspace's build must not crawl into it
  if ! (cd "$WS" && colcon --log-base log build "${BUILD_ARGS[@]}" --event-handlers console_cohesion+ \
        --cmake-args -DPython3_EXECUTABLE="$VIRTUAL_ENV/bin/python" -DBUILD_TESTING=OFF \
        > "$WS/log/colcon-build.txt" 2>&1); then
    tail -n 40 "$WS/log/colcon-build.txt" >&2 || true
    die "colcon build failed; full log: ${WS#"$ROOT"/}/log/colcon-build.txt"
  fi
  echo "$KEY" > "$WS/build/.vla-il-env"
  echo "$WS_KEY" > "$WS/install/.vla-il-stamp"
  say "workspace built in $(( $(date +%s) - started )) s"
  if [ -n "$DEPLOY" ]; then
    say "deploy install: $(du -shL "$VENV" | cut -f1) environment + $(du -sh "$WS/install" | cut -f1) ROS packages; use it with: source scripts/env.sh --deploy"
  fi
fi
