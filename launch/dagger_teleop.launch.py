"""Human-gated DAgger: the policy drives, a teleop device takes over, every tick is recorded.

    ros2 launch vla_il dagger_teleop.launch.py policy:=/path/to/bundle                      # simulated ALOHA
    ros2 launch vla_il dagger_teleop.launch.py sim:=false robot:=aloha teleop:=leader policy:=/path/to/bundle \
        record_dir:=~/recordings/aloha_cube

Nodes: sim_bridge (sim:=true), policy_node, intervention_mux, one teleop node (teleop:=sim_expert |
joy | keyboard | leader) and dagger_recorder. Episodes: call /dagger_recorder/start_episode and
/dagger_recorder/stop_episode (the keyboard does it with n / s / f / d; in the sim an episode also
ends, and is saved, when the sim says it is done). mode:=lockstep steps the sim once per command.

On a robot (sim:=false) the robot profile (robot:=<name in config/robots/> or a profile YAML, as in
deploy.launch.py) says everything robot-specific: the joint-state, command and camera topics every
node is remapped to, the mux's joint limits and largest step, the cameras the recorder records, one
camera_node per camera it drives, and its robot_adapter when it has one. A bundle whose joints are
not the profile's is refused before anything starts.
`vla-il demo` starts the same executables with the same parameter files from Python.
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

TELEOPS = ("sim_expert", "joy", "keyboard", "leader")


def _load_profile(context, share: str) -> tuple[str, dict]:
    robot = LaunchConfiguration("robot").perform(context)
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


def _graph(context):
    share = FindPackageShare("vla_il").perform(context)

    def config(name: str) -> str:
        return os.path.join(share, "config", name)

    sim = LaunchConfiguration("sim").perform(context).strip().lower() in ("true", "1", "yes")
    task = LaunchConfiguration("task").perform(context)
    mode = LaunchConfiguration("mode").perform(context)
    teleop = LaunchConfiguration("teleop").perform(context)
    bundle = os.path.expanduser(LaunchConfiguration("policy").perform(context))  # the nodes get no "~"
    if mode not in ("realtime", "lockstep"):
        raise RuntimeError(f"mode:={mode}: realtime or lockstep")
    if teleop not in TELEOPS:
        raise RuntimeError(f"teleop:={teleop}: one of {', '.join(TELEOPS)}")
    if teleop == "sim_expert" and not sim:
        raise RuntimeError("teleop:=sim_expert reads the simulator's privileged state: use it with sim:=true")
    path, profile = _load_profile(context, share)
    if not sim and profile.get("name") == "aloha_sim":
        raise RuntimeError("sim:=false drives a robot: name its profile with robot:=<profile> (e.g. robot:=aloha)")
    _check_bundle(bundle, profile)

    joints, rate = profile["joints"], float(profile["control_rate_hz"])
    topics = {"joint_states": "/joint_states", "command": "/command", **(profile.get("topics") or {})}
    joint_states, command = topics["joint_states"], topics["command"]
    cameras = profile.get("cameras") or []
    camera_remaps = [(f"cameras/{c['name']}/image_raw", c["topic"]) for c in cameras]
    names = [j["name"] for j in joints]
    limits = {
        "joint_names": names,
        "joint_lower": [float(j["lower"]) for j in joints],
        "joint_upper": [float(j["upper"]) for j in joints],
        "max_step": [float(j["max_velocity"]) / rate for j in joints],
    }
    # a list parameter may not be empty in a launch file (it has no type): [""] is "none" to every node
    camera_names = [c["name"] for c in cameras] or [""]
    recorder = {"record_dir": os.path.expanduser(LaunchConfiguration("record_dir").perform(context)),
                "joint_names": names, "cameras": camera_names, "fps": int(rate)}
    # mode:=lockstep: the overrides `vla-il demo` applies too (config/lockstep.yaml)
    lockstep = [config("lockstep.yaml")] if mode == "lockstep" else []
    if sim:
        recorder["sim_task"] = task  # the privileged object poses are recorded too

    nodes = []
    if sim:
        nodes.append(Node(
            package="vla_il_nodes", executable="sim_bridge", name="sim_bridge",
            parameters=[config("sim_aloha.yaml"), {"task": task, "mode": mode, "cameras": camera_names}],
            output="screen",
        ))
    else:
        nodes += [
            Node(
                package="vla_il_nodes", executable="camera_node", name="camera_node",
                namespace=f"cameras/{cam['name']}",
                parameters=[config("camera_node.yaml"),
                            {**cam["settings"], "source": str(cam["settings"]["source"]), "camera_name": cam["name"]}],
                output="screen",
            )
            for cam in cameras
            if cam.get("driver") == "camera_node"
        ]
        if profile.get("adapter"):
            nodes.append(Node(package="vla_il_nodes", executable="robot_adapter", name="robot_adapter",
                              parameters=[{"profile": path}], output="screen"))
    nodes += [
        Node(
            package="vla_il_nodes", executable="policy_node", name="policy_node",
            parameters=[config("policy_node.yaml"), {"bundle": bundle}, *lockstep],
            remappings=[("joint_states", joint_states), *camera_remaps],
            output="screen",
        ),
        Node(
            package="vla_il_nodes", executable="intervention_mux", name="intervention_mux",
            parameters=[config("intervention_mux.yaml"), limits, *lockstep],
            remappings=[("command", command), ("joint_states", joint_states)],
            output="screen",
        ),
    ]
    if teleop == "sim_expert":
        nodes.append(Node(
            package="vla_il_nodes", executable="teleop_sim_expert", name="teleop_sim_expert",
            parameters=[config("teleop_sim_expert.yaml"), {"task": task}], output="screen",
        ))
    elif teleop == "joy":
        nodes.append(Node(
            package="vla_il_nodes", executable="teleop_joy", name="teleop_joy",
            parameters=[config("teleop_joy.yaml"),
                        {k: limits[k] for k in ("joint_names", "joint_lower", "joint_upper")}],
            remappings=[("joint_states", joint_states)], output="screen",
        ))
    elif teleop == "keyboard":
        nodes.append(Node(
            package="vla_il_nodes", executable="teleop_keyboard", name="teleop_keyboard",
            parameters=[config("teleop_keyboard.yaml")],
            remappings=[("joint_states", joint_states)], output="screen", emulate_tty=True,
        ))
    else:
        nodes.append(Node(
            package="vla_il_nodes", executable="teleop_leader", name="teleop_leader",
            parameters=[config("teleop_leader.yaml")], output="screen",
        ))
    nodes.append(Node(
        package="vla_il_nodes", executable="dagger_recorder", name="dagger_recorder",
        parameters=[config("dagger_recorder.yaml"), recorder],
        remappings=[("command", command), ("joint_states", joint_states), *camera_remaps],
        output="screen",
    ))
    display = LaunchConfiguration("display").perform(context).strip().lower()
    if display not in ("true", "false", "1", "0", "yes", "no"):
        raise RuntimeError(f"display:={display}: true or false")
    if display in ("true", "1", "yes"):  # the live view: one more subscriber, off the control path
        port = LaunchConfiguration("display_port").perform(context)
        if not port.isdigit():
            raise RuntimeError(f"display_port:={port}: a port number")
        nodes.append(Node(
            package="vla_il_nodes", executable="display_node", name="display_node",
            parameters=[config("display_node.yaml"),
                        {"cameras": camera_names, "web_port": int(port)}],
            remappings=[("command", command), ("joint_states", joint_states), *camera_remaps],
            output="screen",
        ))
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
    return LaunchDescription([
        DeclareLaunchArgument("sim", default_value="true", description="true: the simulated ALOHA; false: a robot."),
        DeclareLaunchArgument("robot", default_value="aloha_sim",
                              description="Robot profile: a name in config/robots/ (aloha_sim, aloha, "
                                          "ros2_control_arm) or the path of a profile YAML; sim:=false needs one."),
        DeclareLaunchArgument("task", default_value="transfer_cube", description="transfer_cube | insertion"),
        DeclareLaunchArgument("policy", description="Policy bundle directory (policy.onnx + policy.json)."),
        DeclareLaunchArgument("teleop", default_value="sim_expert", description="sim_expert | joy | keyboard | leader"),
        DeclareLaunchArgument("record_dir", default_value="~/vla_il_recordings/dagger",
                              description="Where episodes are recorded (appended to what is there)."),
        DeclareLaunchArgument("mode", default_value="realtime",
                              description="realtime (50 Hz, like a robot) | lockstep (the sim steps per command)."),
        DeclareLaunchArgument("display", default_value="false",
                              description="true: the live view (rerun web viewer): cameras, joints, proposals, "
                                          "who drives, takeovers, latency."),
        DeclareLaunchArgument("display_port", default_value="9090",
                              description="display:=true: the web viewer at http://localhost:<port>."),
        *_exposure(),
        OpaqueFunction(function=_graph),
    ])
