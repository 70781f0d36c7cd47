"""Human-gated DAgger: the policy drives, a teleop device takes over, every tick is recorded.

    ros2 launch vla_il dagger_teleop.launch.py policy:=/path/to/bundle                      # simulated ALOHA
    ros2 launch vla_il dagger_teleop.launch.py sim:=false robot:=aloha teleop:=leader policy:=/path/to/bundle \
        record_dir:=~/recordings/aloha_cube

Nodes: sim_bridge (sim:=true), policy_node, intervention_mux, one teleop node (teleop:=sim_expert |
joy | keyboard | leader) and dagger_recorder. Episodes: call /dagger_recorder/start_episode and
/dagger_recorder/stop_episode (the keyboard does it with n / s / f / d). In the sim (episodes:=auto, the
default) the sim runs episodes back to back, each recorded from its first step and saved when the sim says
it is done; episodes:=manual: start_episode, then /sim/reset. mode:=lockstep steps the sim once per command.

On a robot (sim:=false) the robot profile (robot:=<name in config/robots/> or a profile YAML, as in
deploy.launch.py) says everything robot-specific: the joint-state, command and camera topics every
node is remapped to, the mux's joint limits and largest step, the cameras the recorder records, one
camera_node per camera it drives, and its robot_adapter when it has one. A bundle whose joints are
not the profile's is refused before anything starts.
`vla-il demo` starts the same executables with the same parameter files from Python.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch_ros.actions import Node

import vla_il_launch as vl

TELEOPS = ("sim_expert", "joy", "keyboard", "leader")
MODES = ("realtime", "lockstep")
TASKS = ("transfer_cube", "insertion")


def _graph(context):
    def config(name: str) -> str:
        return vl.config_file(context, name)

    sim = vl.flag(context, "sim")
    task = vl.choice(context, "task", TASKS)
    mode = vl.choice(context, "mode", MODES)
    teleop = vl.choice(context, "teleop", TELEOPS)
    episodes = vl.choice(context, "episodes", ("auto", "manual"))
    display = vl.flag(context, "display")
    port = vl.whole_number(context, "display_port")
    if teleop == "sim_expert" and not sim:
        raise vl.LaunchError("teleop:=sim_expert reads the simulator's privileged state: use it with sim:=true")
    profile = vl.robot_profile(context)
    if not sim and profile.name == "aloha_sim":
        raise vl.LaunchError("sim:=false drives a robot: name its profile with robot:=<profile> (e.g. robot:=aloha)")
    bundle = vl.checked_bundle(context, profile)  # joints, cameras and rate: the profile's, or nothing starts
    record_dir = vl.path_argument(context, "record_dir")

    joint_states, command = profile.topics["joint_states"], profile.topics["command"]
    camera_remaps = vl.camera_remaps(profile)
    camera_names = vl.camera_names(profile)
    limits = profile.mux_parameters()
    recorder = {"record_dir": record_dir, "joint_names": limits["joint_names"], "cameras": camera_names,
                "fps": int(profile.control_rate_hz)}
    # mode:=lockstep: the overrides `vla-il demo` applies too (config/lockstep.yaml)
    lockstep = [config("lockstep.yaml")] if mode == "lockstep" else []
    if sim:
        recorder["sim_task"] = task  # the privileged object poses are recorded too

    def node(executable: str, **kwargs) -> Node:
        # lockstep: config/lockstep.yaml over each node's own parameters (its sections name the nodes it changes)
        kwargs["parameters"] = [*kwargs.get("parameters", []), *lockstep]
        return Node(package="vla_il_nodes", executable=executable, name=kwargs.pop("name", executable),
                    output="screen", on_exit=vl.required(kwargs.pop("label", executable)), **kwargs)

    nodes = []
    if sim:
        # episodes:=auto: the sim has the recorder start each episode, then starts it (none runs unrecorded)
        nodes.append(node("sim_bridge", parameters=[config("sim_aloha.yaml"), {
            "task": task, "mode": mode, "cameras": camera_names, "auto_episodes": episodes == "auto",
            "recorder_service": "/dagger_recorder/start_episode" if episodes == "auto" else ""}]))
    else:
        nodes += [
            node("camera_node", namespace=f"cameras/{cam.name}", label=f"camera_node ({cam.name})",
                 parameters=[config("camera_node.yaml"), vl.camera_parameters(cam)])
            for cam in profile.cameras
            if cam.driver == "camera_node"
        ]
        if profile.has_adapter:
            nodes.append(node("robot_adapter", parameters=[{"profile": str(profile.path)}]))
    nodes += [
        node("policy_node", parameters=[config("policy_node.yaml"), {"bundle": bundle}],
             remappings=[("joint_states", joint_states), *camera_remaps]),
        node("intervention_mux", parameters=[config("intervention_mux.yaml"), limits],
             remappings=[("command", command), ("joint_states", joint_states)]),
    ]
    if teleop == "sim_expert":
        nodes.append(node("teleop_sim_expert", parameters=[config("teleop_sim_expert.yaml"), {"task": task}]))
    elif teleop == "joy":
        nodes.append(node("teleop_joy", parameters=[config("teleop_joy.yaml"), {
            k: limits[k] for k in ("joint_names", "joint_lower", "joint_upper")}],
            remappings=[("joint_states", joint_states)]))
    elif teleop == "keyboard":
        nodes.append(node("teleop_keyboard", parameters=[config("teleop_keyboard.yaml")],
                          remappings=[("joint_states", joint_states)], emulate_tty=True))
    else:
        # the profile's leader arms (aloha: one per side, each on its own topic); else one on leader/joint_states
        leader = {"profile": str(profile.path)} if profile.leader_sources else {}
        nodes.append(node("teleop_leader", parameters=[config("teleop_leader.yaml"), leader],
                          remappings=[("joint_states", joint_states)]))
    nodes.append(node("dagger_recorder", parameters=[config("dagger_recorder.yaml"), recorder],
                      remappings=[("command", command), ("joint_states", joint_states), *camera_remaps]))
    if display:  # the live view: one more subscriber, off the control path
        nodes.append(node("display_node", parameters=[config("display_node.yaml"),
                                                      {"cameras": camera_names, "web_port": port}],
                          remappings=[("command", command), ("joint_states", joint_states), *camera_remaps]))
    return nodes


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
        DeclareLaunchArgument("episodes", default_value="auto",
                              description="In the sim: auto (episodes back to back, each recorded) | manual "
                                          "(call /dagger_recorder/start_episode, then /sim/reset)."),
        DeclareLaunchArgument("mode", default_value="realtime",
                              description="realtime (50 Hz, like a robot) | lockstep (the sim steps per command)."),
        DeclareLaunchArgument("display", default_value="false",
                              description="true: the live view (rerun web viewer): cameras, joints, proposals, "
                                          "who drives, takeovers, latency."),
        DeclareLaunchArgument("display_port", default_value="9090",
                              description="display:=true: the web viewer at http://localhost:<port>."),
        *vl.exposure_arguments(),
        OpaqueFunction(function=_graph),
    ])
