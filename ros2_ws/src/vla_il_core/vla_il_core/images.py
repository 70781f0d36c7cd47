"""Camera images from ROS messages as pixels, without ROS: rclpy's sensor_msgs/Image or a bag reader's
(anything with encoding, height, width, step and data)."""

from __future__ import annotations

import numpy as np

ENCODINGS = {"rgb8": 3, "bgr8": 3, "mono8": 1}  # the raw encodings read (channels of 8 bits)


def rgb_pixels(msg) -> np.ndarray:
    """The image as (H, W, 3) uint8 RGB (a read-only view of the message's data where it can be); ValueError
    naming what is wrong (the encoding, or data too short for the size it claims)."""
    channels = ENCODINGS.get(msg.encoding)
    if channels is None:
        raise ValueError(f"encoding {msg.encoding!r} (read: {', '.join(ENCODINGS)})")
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if step < w * channels or len(msg.data) < h * step:
        raise ValueError(f"{w}x{h} {msg.encoding} with rows of {step} bytes needs {h * step} bytes, "
                         f"got {len(msg.data)}")
    rows = np.frombuffer(msg.data, np.uint8, count=h * step).reshape(h, step)
    pixels = rows[:, : w * channels].reshape(h, w, channels)
    if msg.encoding == "bgr8":
        return pixels[..., ::-1]
    if channels == 1:
        return np.repeat(pixels, 3, axis=2)
    return pixels
