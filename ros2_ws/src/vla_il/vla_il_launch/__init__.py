"""What vla-il's launch files share (installed by the vla_il bringup package): arguments checked up front, the
robot profile and the policy bundle checked against each other, required nodes, and who can reach the graph.

A check that fails raises LaunchError: `ros2 launch` prints its one line ("Caught exception in launch: ...") and
exits non-zero before any node starts. A required node that exits with an error stops the whole graph, and the
launch exits non-zero (launch returns 1 when an event handler raises).
"""

from __future__ import annotations

import os

from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable, Shutdown
from launch.conditions import IfCondition
from launch.substitutions import EnvironmentVariable, LaunchConfiguration, NotEqualsSubstitution, PathJoinSubstitution
from launch_ros.substitutions import FindPackageShare

from vla_il_core.bundle import BundleError, read_bundle
from vla_il_core.profiles import ProfileError, RobotProfile, check_bundle, load_profile

TRUE, FALSE = ("true", "1", "yes"), ("false", "0", "no")


class LaunchError(RuntimeError):
    """A launch argument, profile or bundle that must not start anything; the message is the one line shown."""


def share(context) -> str:
    return FindPackageShare("vla_il").perform(context)


def config_file(context, name: str) -> str:
    """An installed parameter file of the vla_il package."""
    return os.path.join(share(context), "config", name)


def argument(context, name: str) -> str:
    return LaunchConfiguration(name).perform(context)


def choice(context, name: str, choices: tuple[str, ...]) -> str:
    value = argument(context, name)
    if value not in choices:
        raise LaunchError(f"{name}:={value}: one of {', '.join(choices)}")
    return value


def flag(context, name: str) -> bool:
    value = argument(context, name).strip().lower()
    if value not in TRUE + FALSE:
        raise LaunchError(f"{name}:={value}: true or false")
    return value in TRUE


def whole_number(context, name: str) -> int:
    value = argument(context, name).strip()
    if not value.isdigit():
        raise LaunchError(f"{name}:={value}: a whole number >= 0")
    return int(value)


def path_argument(context, name: str) -> str:
    """A path argument as the nodes must get it: "~" expanded (a node is given no shell)."""
    return os.path.expanduser(argument(context, name))


def robot_profile(context) -> RobotProfile:
    """robot:= (a profile's name in the installed config/robots, or a profile file), loaded and validated."""
    robot = argument(context, "robot")
    try:
        return load_profile(os.path.expanduser(robot), os.path.join(share(context), "config", "robots"))
    except ProfileError as exc:
        raise LaunchError(f"robot:={robot}: {exc}") from exc


def checked_bundle(context, profile: RobotProfile) -> str:
    """policy:= read and checked against the robot: its joints, cameras and rate are the profile's."""
    path = path_argument(context, "policy")
    try:
        spec = read_bundle(path)
        check_bundle(profile, spec)
    except (BundleError, ProfileError) as exc:
        raise LaunchError(f"refusing bundle {path}: {exc}") from exc
    if abs(spec.fps - profile.control_rate_hz) > 1e-6:
        raise LaunchError(f"refusing bundle {path}: it was trained at {spec.fps:g} Hz, robot profile "
                          f"'{profile.name}' runs at {profile.control_rate_hz:g} Hz")
    return path


def camera_remaps(profile: RobotProfile) -> list[tuple[str, str]]:
    return [(f"cameras/{c.name}/image_raw", c.topic) for c in profile.cameras]


def camera_names(profile: RobotProfile) -> list[str]:
    """The profile's cameras as a list parameter: [""] for none (an empty list has no type in a launch file)."""
    return list(profile.camera_names) or [""]


def camera_parameters(camera) -> dict:
    return {**camera.settings, "source": str(camera.settings.get("source", "")), "camera_name": camera.name}


def required(name: str):
    """on_exit of a node the graph cannot run without: its failure stops the launch with a non-zero exit (one
    line naming it); a clean exit (the Ctrl-C that stops everything) stops the launch too."""

    def on_exit(event, _context):
        if event.returncode:
            raise LaunchError(f"{name} exited with code {event.returncode}: stopping the graph")
        return [Shutdown(reason=f"{name} stopped")]

    return on_exit


def exposure_arguments() -> list:
    """Who can reach the graph: localhost discovery unless discovery_range:= says otherwise; with keystore:=
    (SROS2) every node runs in enclave:= of that keystore, security enforced (a node without its certificates does
    not start); fastdds_profile:= (default: vla-il's shared-memory profile, config/fastdds.xml)."""
    secure = IfCondition(NotEqualsSubstitution(LaunchConfiguration("keystore"), ""))
    return [
        DeclareLaunchArgument("discovery_range", description="LOCALHOST (default) | SUBNET: reach a robot's "
                              "drivers on another machine | SYSTEM_DEFAULT | OFF.",
                              default_value=EnvironmentVariable("ROS_AUTOMATIC_DISCOVERY_RANGE",
                                                                default_value="LOCALHOST")),
        SetEnvironmentVariable("ROS_AUTOMATIC_DISCOVERY_RANGE", LaunchConfiguration("discovery_range")),
        DeclareLaunchArgument("keystore", default_value=EnvironmentVariable("ROS_SECURITY_KEYSTORE", default_value=""),
                              description="SROS2 keystore directory (empty: security off)."),
        DeclareLaunchArgument("enclave", default_value="/vla_il", description="The keystore's enclave of the graph."),
        SetEnvironmentVariable("ROS_SECURITY_KEYSTORE", LaunchConfiguration("keystore"), condition=secure),
        SetEnvironmentVariable("ROS_SECURITY_ENABLE", "true", condition=secure),
        SetEnvironmentVariable("ROS_SECURITY_STRATEGY", "Enforce", condition=secure),
        SetEnvironmentVariable("ROS_SECURITY_ENCLAVE_OVERRIDE", LaunchConfiguration("enclave"), condition=secure),
        # camera images through shared memory without lost frames (config/fastdds.xml says why)
        DeclareLaunchArgument("fastdds_profile", description="Fast DDS XML profile of every process launched here.",
                              default_value=EnvironmentVariable(
                                  "FASTDDS_DEFAULT_PROFILES_FILE", default_value=EnvironmentVariable(
                                      "FASTRTPS_DEFAULT_PROFILES_FILE", default_value=PathJoinSubstitution(
                                          [FindPackageShare("vla_il"), "config", "fastdds.xml"])))),
        SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", LaunchConfiguration("fastdds_profile")),
    ]
