"""LeRobot datasets: the schema every vla-il dataset follows, writing episodes, and loading them."""
