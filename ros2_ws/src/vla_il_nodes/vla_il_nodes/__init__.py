"""vla-il's ROS 2 nodes. Each `<name>.py` is a thin rclpy shell; its logic lives in `<name>_core.py`."""
