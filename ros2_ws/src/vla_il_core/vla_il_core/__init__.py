"""vla-il's ROS-free core, shared by the ROS 2 nodes, training/, sim/ and the vla-il CLI.

bundle         the policy bundle format: read, validate, prove a graph (NumPy; ONNX Runtime to run one)
chunking       action chunks and temporal ensembling
schema         the LeRobot dataset schema every vla-il dataset follows
profiles       robot profiles (config/robots/<name>.yaml): joints, limits, rate, cameras, topics
mux            the intervention mux's rules: who drives, joint and step limits, staleness
runner         the policy runner: observations in, chunks out, re-planning and hand-over between bundles
teleop         the expert gate and the teleop devices' mappings
recorder_sync  the recorder's synchroniser: one row per joint state, with the images and actions of that time
display        what the live view and the dataset viewer share (colours, series)
paths          where the installed configuration is

Nothing here imports rclpy, PyTorch, lerobot or MuJoCo (tests/test_import_graph.py checks it).
"""
