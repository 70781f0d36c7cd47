"""vla_il_nodes: console entry points are what `ros2 run vla_il_nodes <node>` starts."""

from setuptools import find_packages, setup

PACKAGE = "vla_il_nodes"

# node name -> module:function. Every node is also listed in launch files; tests check both.
NODES = {
    "intervention_mux": "vla_il_nodes.intervention_mux:main",
    "sim_bridge": "vla_il_nodes.sim_bridge:main",
    "policy_node": "vla_il_nodes.policy_node:main",
    "dagger_recorder": "vla_il_nodes.dagger_recorder:main",
    "teleop_sim_expert": "vla_il_nodes.teleop_sim_expert:main",
    "teleop_joy": "vla_il_nodes.teleop_joy:main",
    "teleop_keyboard": "vla_il_nodes.teleop_keyboard:main",
    "teleop_leader": "vla_il_nodes.teleop_leader:main",
    "camera_node": "vla_il_nodes.camera_node:main",
    "robot_adapter": "vla_il_nodes.robot_adapter:main",
    "display_node": "vla_il_nodes.display_node:main",
}

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="vla-il developers",
    maintainer_email="dev@vla-il.org",
    description="vla-il ROS 2 nodes",
    license="Apache-2.0",
    entry_points={"console_scripts": [f"{name} = {target}" for name, target in NODES.items()]},
)
