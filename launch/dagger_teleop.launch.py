"""Human-gated DAgger: the policy drives, a teleop device takes over, every tick is recorded.

    ros2 launch vla_il dagger_teleop.launch.py policy:=/path/to/bundle                      # simulated ALOHA
    ros2 launch vla_il dagger_teleop.launch.py sim:=false teleop:=leader policy:=/path/to/bundle \
        record_dir:=~/recordings/aloha_cube

Nodes: sim_bridge (sim:=true), policy_node, intervention_mux, one teleop node (teleop:=sim_expert |
joy | keyboard | leader) and dagger_recorder. Episodes: call /dagger_recorder/start_episode and
/dagger_recorder/stop_episode (the keyboard does it with n / s / f / d; in the sim an episode also
ends, and is saved, when the sim says it is done). mode:=lockstep steps the sim once per command.
`vla-il demo` starts the same executables with the same parameter files from Python.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition, LaunchConfigurationEquals, UnlessCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution, PythonExpression
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def _config(name: str) -> PathJoinSubstitution:
    return PathJoinSubstitution([FindPackageShare("vla_il"), "config", name])


def generate_launch_description() -> LaunchDescription:
    sim = LaunchConfiguration("sim")
    task = LaunchConfiguration("task")
    mode = LaunchConfiguration("mode")
    tick_source = PythonExpression(["'observation' if '", mode, "' == 'lockstep' else 'timer'"])
    recorder_params = [_config("dagger_recorder.yaml"), {"record_dir": LaunchConfiguration("record_dir")}]
    return LaunchDescription([
        DeclareLaunchArgument("sim", default_value="true", description="true: the simulated ALOHA; false: a robot."),
        DeclareLaunchArgument("task", default_value="transfer_cube", description="transfer_cube | insertion"),
        DeclareLaunchArgument("policy", description="Policy bundle directory (policy.onnx + policy.json)."),
        DeclareLaunchArgument("teleop", default_value="sim_expert", description="sim_expert | joy | keyboard | leader"),
        DeclareLaunchArgument("record_dir", default_value="~/vla_il_recordings/dagger",
                              description="Where episodes are recorded (appended to what is there)."),
        DeclareLaunchArgument("mode", default_value="realtime",
                              description="realtime (50 Hz, like a robot) | lockstep (the sim steps per command)."),
        Node(
            package="vla_il_nodes", executable="sim_bridge", name="sim_bridge", condition=IfCondition(sim),
            parameters=[_config("sim_aloha.yaml"), {"task": task, "mode": mode}], output="screen",
        ),
        Node(
            package="vla_il_nodes", executable="policy_node", name="policy_node",
            parameters=[_config("policy_node.yaml"),
                        {"bundle": LaunchConfiguration("policy"), "tick_source": tick_source}],
            output="screen",
        ),
        Node(
            package="vla_il_nodes", executable="intervention_mux", name="intervention_mux",
            parameters=[_config("intervention_mux.yaml")], output="screen",
        ),
        Node(
            package="vla_il_nodes", executable="teleop_sim_expert", name="teleop_sim_expert",
            condition=LaunchConfigurationEquals("teleop", "sim_expert"),
            parameters=[_config("teleop_sim_expert.yaml"), {"task": task}], output="screen",
        ),
        Node(
            package="vla_il_nodes", executable="teleop_joy", name="teleop_joy",
            condition=LaunchConfigurationEquals("teleop", "joy"),
            parameters=[_config("teleop_joy.yaml")], output="screen",
        ),
        Node(
            package="vla_il_nodes", executable="teleop_keyboard", name="teleop_keyboard",
            condition=LaunchConfigurationEquals("teleop", "keyboard"),
            parameters=[_config("teleop_keyboard.yaml")], output="screen", emulate_tty=True,
        ),
        Node(
            package="vla_il_nodes", executable="teleop_leader", name="teleop_leader",
            condition=LaunchConfigurationEquals("teleop", "leader"),
            parameters=[_config("teleop_leader.yaml")], output="screen",
        ),
        Node(  # in the sim: the privileged object poses are recorded too
            package="vla_il_nodes", executable="dagger_recorder", name="dagger_recorder", condition=IfCondition(sim),
            parameters=[*recorder_params, {"sim_task": task}], output="screen",
        ),
        Node(
            package="vla_il_nodes", executable="dagger_recorder", name="dagger_recorder",
            condition=UnlessCondition(sim), parameters=recorder_params, output="screen",
        ),
    ])
