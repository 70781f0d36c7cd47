"""The simulated ALOHA alone, standing in for the robot's drivers.

    ros2 launch vla_il sim_aloha.launch.py task:=insertion mode:=lockstep

Publishes /joint_states, /cameras/<name>/image_raw and the privileged /sim/state; executes /command.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description() -> LaunchDescription:
    params = PathJoinSubstitution([FindPackageShare("vla_il"), "config", "sim_aloha.yaml"])
    return LaunchDescription([
        DeclareLaunchArgument("task", default_value="transfer_cube", description="transfer_cube | insertion"),
        DeclareLaunchArgument("mode", default_value="realtime", description="realtime | lockstep"),
        DeclareLaunchArgument("seed", default_value="0", description="Seed of the first episode."),
        Node(
            package="vla_il_nodes",
            executable="sim_bridge",
            name="sim_bridge",
            parameters=[params, {
                "task": LaunchConfiguration("task"),
                "mode": LaunchConfiguration("mode"),
                "seed": LaunchConfiguration("seed"),
            }],
            output="screen",
        ),
    ])
