"""vla_il_core: the ROS-free contracts and cores every side of vla-il shares (nodes, training, sim, CLI).

Builds with colcon (ament_python) and installs with pip alike: `pip install ros2_ws/src/vla_il_core`."""

from setuptools import find_packages, setup

PACKAGE = "vla_il_core"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
    ],
    install_requires=["numpy", "pyyaml"],
    extras_require={"runner": ["onnxruntime"]},
    zip_safe=True,
    maintainer="vla-il developers",
    maintainer_email="dev@vla-il.org",
    description="vla-il's ROS-free core: bundles, chunking, dataset schema, robot profiles, mux, policy runner",
    license="Apache-2.0",
)
