"""What a bundle drives: the joints, state components and rate of the robot a policy was trained for, from its
checkpoint's provenance (both exporters write them into policy.json)."""

from __future__ import annotations

from typing import Any

from vla_il_core.bundle import BundleError


def robot_io(provenance: dict[str, Any], state_dim: int, action_dim: int) -> tuple[list[dict], list[str], float]:
    """State components (with their topics), joint names and fps of what the policy drives: the robot of the
    dataset it was trained on (provenance["robot"], training.datasets.lerobot_io.robot_of_dataset), else the
    simulated ALOHA's profile for a policy trained in the sim (env aloha:<task>), else a gymnasium env's vectors."""
    robot = provenance.get("robot")
    env_name = provenance.get("env") or ""
    if robot:
        joints, fps = list(robot["joint_names"]), float(robot["fps"])
    elif env_name.startswith("aloha:"):
        from vla_il_core.profiles import load_profile

        sim = load_profile("aloha_sim")
        joints, fps = list(sim.joint_names), float(sim.control_rate_hz)
    else:
        return ([{"name": "observation", "dim": state_dim, "source": "observation"}],
                [f"action_{i}" for i in range(action_dim)], 50.0)
    if action_dim != len(joints) or state_dim < len(joints):
        raise BundleError(f"the policy's state ({state_dim}) and actions ({action_dim}) do not fit the "
                          f"{len(joints)} joints it was trained for ({', '.join(joints)})")
    components = [{"name": "joint_positions", "dim": len(joints), "source": "joint_states"}]
    if state_dim > len(joints):  # the sim's object poses (privileged: a robot has none)
        components.append({"name": "env_state", "dim": state_dim - len(joints), "source": "sim/state"})
    return components, joints, fps
