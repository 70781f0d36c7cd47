"""Deploy on a robot: its cameras, the policy node and the intervention mux, from the robot's profile.

    ros2 launch vla_il deploy.launch.py robot:=aloha policy:=/path/to/bundle
    ros2 launch vla_il deploy.launch.py robot:=/path/to/my_arm.yaml policy:=/path/to/bundle

The profile (config/robots/<robot>.yaml) is the only thing that changes between the sim and a robot:
the mux's joint names, limits and largest step per command come from it; one camera_node per
camera it drives (driver: camera_node) is started in cameras/<name>; our `joint_states`, `command`
and camera topics are remapped to its topics; when it has an adapter section (the robot's state on
several topics, other units or command types) the robot_adapter node runs it. A bundle whose joint
names are not the profile's is refused before anything starts. command_topic:= / joint_states_topic:=
override the profile's topics.
"""

import json
import os

import yaml
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.conditions import LaunchConfigurationNotEquals
from launch.substitutions import EnvironmentVariable, LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def _load_profile(context) -> tuple[str, dict]:
    robot = LaunchConfiguration("robot").perform(context)
    share = FindPackageShare("vla_il").perform(context)
    is_file = robot.rsplit(".", 1)[-1] in ("yaml", "yml")  # else a profile's name
    path = robot if is_file else os.path.join(share, "config", "robots", robot) + os.extsep + "yaml"
    if not os.path.isfile(path):
        raise RuntimeError(f"robot:={robot}: no robot profile at {path}")
    with open(path) as f:
        return path, yaml.safe_load(f)


def _check_bundle(bundle: str, profile: dict) -> None:
    """The policy must drive exactly the profile's joints (vla_il_core.profiles.check_bundle, without its imports)."""
    with open(os.path.join(os.path.expanduser(bundle), "policy.json")) as f:
        joints = json.load(f)["joint_names"]
    expected = [j["name"] for j in profile["joints"]]
    if joints != expected:
        raise RuntimeError(f"refusing bundle {bundle}: it drives joints {joints}, robot profile "
                           f"'{profile['name']}' has {expected}")


def _robot_graph(context):
    path, profile = _load_profile(context)
    bundle = os.path.expanduser(LaunchConfiguration("policy").perform(context))  # the nodes get no "~"
    _check_bundle(bundle, profile)
    joints, rate = profile["joints"], float(profile["control_rate_hz"])
    topics = {"joint_states": "/joint_states", "command": "/command", **(profile.get("topics") or {})}
    joint_states = LaunchConfiguration("joint_states_topic").perform(context) or topics["joint_states"]
    command = LaunchConfiguration("command_topic").perform(context) or topics["command"]
    cameras = profile.get("cameras") or []
    limits = {
        "joint_names": [j["name"] for j in joints],
        "joint_lower": [float(j["lower"]) for j in joints],
        "joint_upper": [float(j["upper"]) for j in joints],
        "max_step": [float(j["max_velocity"]) / rate for j in joints],
    }
    camera_remaps = [(f"cameras/{c['name']}/image_raw", c["topic"]) for c in cameras]
    config = FindPackageShare("vla_il").perform(context)
    nodes = [
        Node(
            package="vla_il_nodes",
            executable="camera_node",
            name="camera_node",
            namespace=f"cameras/{cam['name']}",
            parameters=[
                os.path.join(config, "config", "camera_node.yaml"),
                {**cam["settings"], "source": str(cam["settings"]["source"]), "camera_name": cam["name"]},
            ],
            output="screen",
        )
        for cam in cameras
        if cam.get("driver") == "camera_node"
    ]
    if profile.get("adapter"):
        nodes.append(Node(
            package="vla_il_nodes",
            executable="robot_adapter",
            name="robot_adapter",
            parameters=[{"profile": path}],
            output="screen",
        ))
    nodes += [
        Node(
            package="vla_il_nodes",
            executable="policy_node",
            name="policy_node",
            parameters=[os.path.join(config, "config", "policy_node.yaml"), {"bundle": bundle}],
            remappings=[("joint_states", joint_states), *camera_remaps],
            output="screen",
        ),
        Node(
            package="vla_il_nodes",
            executable="intervention_mux",
            name="intervention_mux",
            parameters=[LaunchConfiguration("mux_params").perform(context), limits],
            remappings=[("command", command), ("joint_states", joint_states)],
            output="screen",
        ),
    ]
    return nodes

def _exposure() -> list:
    """Who can reach the graph: localhost discovery unless discovery_range:= says otherwise; with keystore:=
    (SROS2) every node runs in enclave:= of that keystore, security enforced (a node without its
    certificates does not start)."""
    secure = LaunchConfigurationNotEquals("keystore", "")
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
        *_exposure(),
        OpaqueFunction(function=_robot_graph),
    ])
