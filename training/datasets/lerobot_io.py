"""State-based demonstrations from a local LeRobot dataset (no video decoding: parquet columns only)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from training.demonstrations import Demonstrations
from vla_il_core import schema


def _read_json(path: Path, what: str):
    """The JSON value in `path`; ValueError naming the file when it cannot be read as JSON (a damaged `what`)."""
    import json

    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}): a damaged {what}") from exc


def read_info(root: Path) -> dict:
    """A LeRobot dataset's meta/info.json, parsed: FileNotFoundError when `root` holds no dataset, ValueError
    when the file is damaged or not a LeRobot dataset's, each naming it."""
    info = Path(root) / "meta" / "info.json"
    if not info.is_file():
        raise FileNotFoundError(f"{root} is not a LeRobot dataset (no meta/info.json)")
    meta = _read_json(info, "dataset")
    if not isinstance(meta, dict) or not isinstance(meta.get("features"), dict):
        raise ValueError(f"{info} has no features: not a LeRobot dataset's info.json")
    return meta


RECORDING = "recording.json"  # meta/recording.json: how vla-il recorded the dataset (absent elsewhere)


def write_recording(root: Path, settings: dict) -> None:
    """How a dataset was recorded (`vla-il collect`'s settings: the mux, the action noise, the seeds), beside its
    info.json, so that a tool training or benchmarking on it can tell recordings apart that info.json does not."""
    import json

    meta = Path(root) / "meta"
    meta.mkdir(parents=True, exist_ok=True)
    (meta / RECORDING).write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")


def read_recording(root: Path) -> dict:
    """write_recording's settings ({} for a dataset recorded otherwise: the graph's recorder, lerobot, before
    vla-il wrote them); ValueError naming the file when it is damaged."""
    path = Path(root) / "meta" / RECORDING
    if not path.is_file():
        return {}
    settings = _read_json(path, "recording")
    if not isinstance(settings, dict):
        raise ValueError(f"{path} holds no settings (a JSON object): a damaged recording")
    return settings


def open_dataset(root: Path):
    """A local LeRobot dataset, offline; a clear error when `root` is not one (read_info's)."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    root = Path(root)
    read_info(root)
    return LeRobotDataset(f"local/{root.name}", root=root, video_backend="pyav")


def robot_of_dataset(root: Path) -> dict:
    """What a policy trained on this dataset drives, from the dataset itself (meta/info.json, meta/tasks): the joint
    names of observation.state/action, the recording's fps, its cameras, the size of its object poses (0 on a robot)
    and its task string (the instruction, where the dataset has one task). Saved in the checkpoint's provenance, it
    is what the exporters write into the bundle: no robot's joint names are assumed. read_info's errors."""
    root = Path(root)
    info = read_info(root)
    features = info["features"]
    state = features.get(schema.STATE) or {}
    names = state.get("names")
    if isinstance(names, dict):  # lerobot also writes {"motors": [...]}
        names = next(iter(names.values()), None)
    dim = int(state.get("shape", [0])[0]) if state else 0
    if not names or len(names) != dim:
        names = [f"joint_{i}" for i in range(dim)]
    instruction = None
    tasks = root / "meta" / "tasks.parquet"
    if tasks.is_file():
        import pandas as pd

        frame = pd.read_parquet(tasks)
        texts = [str(t) for t in (frame["task"] if "task" in frame.columns else frame.index)]
        instruction = texts[0] if len(texts) == 1 else None
    env_state = features.get(schema.ENV_STATE)
    return {"joint_names": [str(n) for n in names], "fps": float(info.get("fps") or 50.0),
            "cameras": schema.cameras_of(features), "env_state_dim": int(env_state["shape"][0]) if env_state else 0,
            "instruction": instruction}


def load_demonstrations(root: Path, label: str = schema.ACTION, use_env_state: bool = True) -> Demonstrations:
    """(state [+ object poses], label) pairs per episode; an episode's return is its success (0/1).

    label: which action is learned, `action` (what was executed) or `expert_action` (the expert's label).
    """
    ds = open_dataset(root)
    table = ds.hf_dataset.with_format("numpy")
    cols = set(table.column_names)
    if label not in cols:
        raise ValueError(f"{root} has no '{label}' column (columns: {', '.join(sorted(cols))})")
    parts = [np.stack(table[schema.STATE])]
    if use_env_state and schema.ENV_STATE in cols:
        parts.append(np.stack(table[schema.ENV_STATE]))
    obs = np.concatenate(parts, axis=1).astype(np.float32)
    actions = np.stack(table[label]).astype(np.float32)
    episode = np.asarray(table["episode_index"], dtype=np.int64)
    order = np.lexsort((np.asarray(table["frame_index"]), episode))  # episodes contiguous, frames in order
    obs, actions, episode = obs[order], actions[order], episode[order]
    returns = {}
    if schema.SUCCESS in cols:
        success = np.asarray(table[schema.SUCCESS]).reshape(-1)[order]
        returns = {int(e): float(success[episode == e].any()) for e in np.unique(episode)}
    return Demonstrations(obs, actions, episode, returns)
