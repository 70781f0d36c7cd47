"""Deploy on a robot: the policy node and the intervention mux, remapped to the robot's drivers.

    ros2 launch vla_il deploy.launch.py policy:=/path/to/bundle command_topic:=/my_robot/joint_commands

Everything reaches the robot by remapping: our `/command` goes to the robot's command topic and the
robot's joint states come in as `/joint_states`. The mux stands between the policy and the robot.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description() -> LaunchDescription:
    command_topic = LaunchConfiguration("command_topic")
    joint_states_topic = LaunchConfiguration("joint_states_topic")
    mux_params = LaunchConfiguration("mux_params")
    policy_params = PathJoinSubstitution([FindPackageShare("vla_il"), "config", "policy_node.yaml"])
    default_mux_params = PathJoinSubstitution([FindPackageShare("vla_il"), "config", "intervention_mux.yaml"])
    return LaunchDescription([
        DeclareLaunchArgument("policy", description="Policy bundle directory (policy.onnx + policy.json)."),
        DeclareLaunchArgument("command_topic", default_value="/command",
                              description="Topic of the robot's driver that executes joint commands."),
        DeclareLaunchArgument("joint_states_topic", default_value="/joint_states",
                              description="Topic on which the robot publishes its joint states."),
        DeclareLaunchArgument("mux_params",
                              default_value=default_mux_params,
                              description="Safety limits of the mux (joint names, limits, max step)."),
        Node(
            package="vla_il_nodes",
            executable="policy_node",
            name="policy_node",
            parameters=[policy_params, {"bundle": LaunchConfiguration("policy")}],
            remappings=[("joint_states", joint_states_topic)],
            output="screen",
        ),
        Node(
            package="vla_il_nodes",
            executable="intervention_mux",
            name="intervention_mux",
            parameters=[mux_params],
            remappings=[("command", command_topic), ("joint_states", joint_states_topic)],
            output="screen",
        ),
    ])
