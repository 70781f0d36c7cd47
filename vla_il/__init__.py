"""vla-il: demonstrations -> VLA policy on ROS 2 -> human corrections -> better policy."""

__version__ = "0.1.0"
