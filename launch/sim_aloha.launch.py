"""The simulated ALOHA alone, standing in for the robot's drivers.

    ros2 launch vla_il sim_aloha.launch.py task:=insertion mode:=lockstep

Publishes /joint_states, /cameras/<name>/image_raw and the privileged /sim/state; executes /command.
Arguments are checked before the node starts: a wrong one is one line and a non-zero exit; so is the
sim_bridge's failure.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch_ros.actions import Node

import vla_il_launch as vl

TASKS = ("transfer_cube", "insertion")
MODES = ("realtime", "lockstep")


def _sim(context):
    task = vl.choice(context, "task", TASKS)
    mode = vl.choice(context, "mode", MODES)
    seed = vl.whole_number(context, "seed")
    episodes = vl.choice(context, "episodes", ("auto", "manual"))
    return [Node(
        package="vla_il_nodes",
        executable="sim_bridge",
        name="sim_bridge",
        parameters=[vl.config_file(context, "sim_aloha.yaml"), {"task": task, "mode": mode, "seed": seed,
                                                                   "auto_episodes": episodes == "auto"}],
        output="screen",
        on_exit=vl.required("sim_bridge"),
    )]


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        DeclareLaunchArgument("task", default_value="transfer_cube", description="transfer_cube | insertion"),
        DeclareLaunchArgument("mode", default_value="realtime", description="realtime | lockstep"),
        DeclareLaunchArgument("seed", default_value="0", description="Seed of the first episode."),
        DeclareLaunchArgument("episodes", default_value="auto",
                              description="auto: episodes back to back (seed, seed+1, ...) | manual: each ends "
                                          "holding still until /sim/reset."),
        OpaqueFunction(function=_sim),
    ])
