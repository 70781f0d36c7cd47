"""The simulated ALOHA alone, standing in for the robot's drivers.

    ros2 launch vla_il sim_aloha.launch.py task:=insertion mode:=lockstep

Publishes /joint_states, /cameras/<name>/image_raw and the privileged /sim/state; executes /command.
Arguments are checked before the node starts: a wrong one is one line and a non-zero exit.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

TASKS = ("transfer_cube", "insertion")
MODES = ("realtime", "lockstep")


def _sim(context):
    task = LaunchConfiguration("task").perform(context)
    mode = LaunchConfiguration("mode").perform(context)
    seed = LaunchConfiguration("seed").perform(context)
    if task not in TASKS:
        raise RuntimeError(f"task:={task}: one of {', '.join(TASKS)}")
    if mode not in MODES:
        raise RuntimeError(f"mode:={mode}: one of {', '.join(MODES)}")
    if not seed.isdigit():
        raise RuntimeError(f"seed:={seed}: a whole number >= 0")
    params = PathJoinSubstitution([FindPackageShare("vla_il"), "config", "sim_aloha.yaml"])
    return [Node(
        package="vla_il_nodes",
        executable="sim_bridge",
        name="sim_bridge",
        parameters=[params, {"task": task, "mode": mode, "seed": int(seed)}],
        output="screen",
    )]


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        DeclareLaunchArgument("task", default_value="transfer_cube", description="transfer_cube | insertion"),
        DeclareLaunchArgument("mode", default_value="realtime", description="realtime | lockstep"),
        DeclareLaunchArgument("seed", default_value="0", description="Seed of the first episode."),
        OpaqueFunction(function=_sim),
    ])
