"""Deploy on a robot: its cameras, the policy node and the intervention mux, from the robot's profile.

    ros2 launch vla_il deploy.launch.py robot:=aloha policy:=/path/to/bundle
    ros2 launch vla_il deploy.launch.py robot:=/path/to/my_arm.yaml policy:=/path/to/bundle

The profile (config/robots/<robot>.yaml) is the only thing that changes between the sim and a robot:
the mux's joint names, limits and largest step per command come from it; one camera_node per
camera it drives (driver: camera_node) is started in cameras/<name>; our `joint_states`, `command`
and camera topics are remapped to its topics; when it has an adapter section (the robot's state on
several topics, other units or command types) the robot_adapter node runs it. A bundle whose joints,
cameras or rate are not the profile's is refused before anything starts (one line, non-zero exit); a node
that fails stops the whole graph, with a non-zero exit. command_topic:= / joint_states_topic:= override the
profile's topics. The checks and arguments shared by the launch files: vla_il_launch (the vla_il package).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

import vla_il_launch as vl


def _robot_graph(context):
    profile = vl.robot_profile(context)
    bundle = vl.checked_bundle(context, profile)  # joints, cameras and rate: the profile's, or nothing starts
    topics = profile.topics
    joint_states = vl.argument(context, "joint_states_topic") or topics["joint_states"]
    command = vl.argument(context, "command_topic") or topics["command"]
    nodes = [
        Node(
            package="vla_il_nodes",
            executable="camera_node",
            name="camera_node",
            namespace=f"cameras/{cam.name}",
            parameters=[vl.config_file(context, "camera_node.yaml"), vl.camera_parameters(cam)],
            output="screen",
            on_exit=vl.required(f"camera_node ({cam.name})"),
        )
        for cam in profile.cameras
        if cam.driver == "camera_node"
    ]
    if profile.has_adapter:
        nodes.append(Node(
            package="vla_il_nodes",
            executable="robot_adapter",
            name="robot_adapter",
            parameters=[{"profile": str(profile.path)}],
            output="screen",
            on_exit=vl.required("robot_adapter"),
        ))
    nodes += [
        Node(
            package="vla_il_nodes",
            executable="policy_node",
            name="policy_node",
            parameters=[vl.config_file(context, "policy_node.yaml"), {"bundle": bundle}],
            remappings=[("joint_states", joint_states), *vl.camera_remaps(profile)],
            output="screen",
            on_exit=vl.required("policy_node"),
        ),
        Node(
            package="vla_il_nodes",
            executable="intervention_mux",
            name="intervention_mux",
            parameters=[vl.path_argument(context, "mux_params"), profile.mux_parameters()],
            remappings=[("command", command), ("joint_states", joint_states)],
            output="screen",
            on_exit=vl.required("intervention_mux"),
        ),
    ]
    return nodes


def generate_launch_description() -> LaunchDescription:
    default_mux_params = PathJoinSubstitution([FindPackageShare("vla_il"), "config", "intervention_mux.yaml"])
    return LaunchDescription([
        DeclareLaunchArgument("robot", default_value="aloha_sim",
                              description="Robot profile: a name in config/robots/ (aloha_sim, aloha, "
                                          "ros2_control_arm) or the path of a profile YAML."),
        DeclareLaunchArgument("policy", description="Policy bundle directory (policy.onnx + policy.json)."),
        DeclareLaunchArgument("command_topic", default_value="",
                              description="Override the profile's command topic (empty: the profile's)."),
        DeclareLaunchArgument("joint_states_topic", default_value="",
                              description="Override the profile's joint-state topic (empty: the profile's)."),
        DeclareLaunchArgument("mux_params", default_value=default_mux_params,
                              description="The mux's timing parameters (its joint limits come from the profile)."),
        *vl.exposure_arguments(),
        OpaqueFunction(function=_robot_graph),
    ])
