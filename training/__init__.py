"""vla-il's training side: imitation learning (il/), models (models/), LeRobot datasets (datasets/),
ONNX export (export/) and ILConfig (config.py)."""
