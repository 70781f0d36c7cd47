# Source this file to work in vla-il's environment from a shell:  source scripts/env.sh
# (./vla-il and ./run-tests do it for you). It activates ./.venv (made by scripts/setup.sh), the
# ROS 2 it contains (or the sourced system ROS 2) and the colcon workspace ros2_ws/install.
# Option --no-workspace: leave out ros2_ws/install (used by setup.sh before the first build).
# Option --deploy: the robot's install instead (scripts/setup.sh --deploy): ./.venv-deploy and
# ros2_ws/deploy/install, and not this checkout's Python (training/, sim/, vla_il/ are not importable).

# ROS's and colcon's scripts read unset variables: relax nounset while sourcing them.
case $- in *u*) _vla_nounset=1; set +u ;; *) _vla_nounset= ;; esac
_vla_root=$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)
_vla_deploy= _vla_workspace=1
for _a in "$@"; do
  case "$_a" in --deploy) _vla_deploy=1 ;; --no-workspace) _vla_workspace= ;; esac
done
_vla_venv="$_vla_root/.venv" _vla_ws="$_vla_root/ros2_ws/install"
if [ -n "$_vla_deploy" ]; then _vla_venv="$_vla_root/.venv-deploy" _vla_ws="$_vla_root/ros2_ws/deploy/install"; fi
if [ ! -e "$_vla_venv/bin/python" ]; then
  echo "[env] no environment yet: run scripts/setup.sh${_vla_deploy:+ --deploy} (or ./run-tests) first" >&2
  [ -n "$_vla_nounset" ] && set -u
  return 1 2>/dev/null || exit 1
fi
if [ -n "${ROS_DISTRO:-}" ] && [ "${VLA_IL_USE_SYSTEM_ROS:-1}" != "0" ] && [ -f "/opt/ros/$ROS_DISTRO/setup.bash" ]; then
  # shellcheck disable=SC1090
  source "/opt/ros/$ROS_DISTRO/setup.bash"
fi

export VIRTUAL_ENV
VIRTUAL_ENV=$(cd "$_vla_venv" && pwd -P)
export PATH="$VIRTUAL_ENV/bin:$PATH"
_vla_site="$VIRTUAL_ENV/lib/python$("$VIRTUAL_ENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')/site-packages"

# The ROS 2 wheels keep their shared libraries in the venv's lib/ and in site-packages/ros_*.libs.
# Their own bootstrapper would re-exec every Python process to set this; we set it once here.
_vla_ld="$VIRTUAL_ENV/lib"
for _d in "$_vla_site"/ros_*.libs; do [ -d "$_d" ] && _vla_ld="$_vla_ld:$_d"; done
export LD_LIBRARY_PATH="$_vla_ld${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export _ROS_WHEELS_BOOTSTRAP_COMPLETE=1
if [ -d "$VIRTUAL_ENV/share/ament_index" ]; then
  export AMENT_PREFIX_PATH="$VIRTUAL_ENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
  export CMAKE_PREFIX_PATH="$VIRTUAL_ENV${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
fi
export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
# Nothing on the LAN may drive the robot: discovery stays on this machine unless you say otherwise
# (export ROS_AUTOMATIC_DISCOVERY_RANGE=SUBNET before sourcing, or launch with discovery_range:=SUBNET,
# to reach a robot's drivers on another machine; see the README's safety section).
if [ -z "${ROS_AUTOMATIC_DISCOVERY_RANGE:-}" ] && [ -z "${ROS_LOCALHOST_ONLY:-}" ]; then
  export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
fi
# Camera images through shared memory without lost frames (config/fastdds.xml says why). A profile of your
# own (FASTDDS_DEFAULT_PROFILES_FILE or FASTRTPS_DEFAULT_PROFILES_FILE) is kept.
if [ -z "$_vla_deploy" ] && [ -z "${FASTDDS_DEFAULT_PROFILES_FILE:-}" ] && [ -z "${FASTRTPS_DEFAULT_PROFILES_FILE:-}" ]; then
  # (the deploy install's nodes find the installed copy themselves: node_runtime.default_dds_profile)
  export FASTDDS_DEFAULT_PROFILES_FILE="$_vla_root/config/fastdds.xml"
fi

if [ -n "$_vla_workspace" ] && [ -f "$_vla_ws/local_setup.bash" ]; then
  # colcon's generated script; it only prepends this workspace's paths.
  # shellcheck disable=SC1091
  COLCON_CURRENT_PREFIX="$_vla_ws" source "$_vla_ws/local_setup.bash"
fi

[ -z "$_vla_deploy" ] && export PYTHONPATH="$_vla_root${PYTHONPATH:+:$PYTHONPATH}"
export MUJOCO_GL="${MUJOCO_GL:-egl}"
# Models and datasets are local here: never wait on a hub (set HF_HUB_OFFLINE=0 to allow downloads).
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
export VLA_IL_ROOT="$_vla_root"
[ -n "$_vla_nounset" ] && set -u
unset _vla_root _vla_site _vla_ld _d _vla_nounset _vla_deploy _vla_workspace _vla_venv _vla_ws _a
# Byte-code caches: imports of torch, transformers and lerobot compile thousands of modules; without
# a cache every process pays that again (~40 s for lerobot on 2 busy cores). Some shells disable
# writing them (PYTHONDONTWRITEBYTECODE); we keep them, outside the clone, beside the venv.
unset PYTHONDONTWRITEBYTECODE
export PYTHONPYCACHEPREFIX="${PYTHONPYCACHEPREFIX:-${VLA_IL_CACHE:-$HOME/.cache/vla-il}/pycache}"
