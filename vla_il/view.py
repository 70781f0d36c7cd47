"""`vla-il view`: a recorded LeRobot dataset's episodes in rerun, and a summary of the recording.

    vla-il view <dataset> [--episode N ...]          # the native viewer, or the web viewer without a display
    vla-il view <dataset> --save episodes.rrd        # a file to open with `rerun episodes.rrd`
    vla-il view <dataset> --summary                  # per-episode table + takeovers.png

Per episode, on the timelines `frame` and `time` (seconds): every camera, the measured joints (`state`),
the command sent (`action`), the expert's and the policy's proposals where the recording has them, who
drove (`driver/expert`: a band at 1 while the expert drove), and the outcome (`outcome`: a line at the end).
Episodes go to `episode_<N>/...`, so several can be compared in one viewer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vla_il_core import schema
from vla_il_core.display import EXPERT_COLOUR, POLICY_COLOUR  # the live view's colours for who drives


class ViewError(ValueError):
    """A dataset or an episode that cannot be shown: one line naming it."""


@dataclass
class EpisodeSummary:
    episode: int
    frames: int
    takeovers: int  # times the expert took over
    expert_share: float  # fraction of frames the expert drove
    success: bool | None  # None: the dataset does not say
    task: str


def _load(root: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    from training.datasets.frame_cache import read_table
    from training.datasets.lerobot_io import read_info

    try:
        meta = read_info(root)
    except (FileNotFoundError, ValueError) as exc:
        raise ViewError(str(exc)) from exc
    try:
        table = read_table(Path(root))
    except (FileNotFoundError, OSError) as exc:
        raise ViewError(f"{root}: its data cannot be read ({exc})") from exc
    order = np.lexsort((table["frame_index"], table["episode_index"]))
    return meta, {k: v[order] for k, v in table.items()}


def _tasks(root: Path) -> dict[int, str]:
    """task_index -> the task's text (LeRobot v3 keeps the text as the index of meta/tasks.parquet)."""
    import pyarrow.parquet as pq

    path = Path(root) / "meta" / "tasks.parquet"
    if not path.exists():
        return {}
    t = pq.read_table(path).to_pandas()
    texts = t["task"] if "task" in t.columns else t.index
    return {int(i): str(text) for i, text in zip(t["task_index"], texts)}


def summarise(root: Path) -> list[EpisodeSummary]:
    """One row per episode: frames, takeovers, expert share, success."""
    _, table = _load(root)
    tasks = _tasks(root)
    episodes = table["episode_index"]
    rows = []
    for e in np.unique(episodes):
        rows.append(_summary(int(e), {k: v[episodes == e] for k, v in table.items()}, tasks))
    return rows


def _summary(e: int, ep: dict[str, np.ndarray], tasks: dict[int, str]) -> EpisodeSummary:
    n = len(ep["episode_index"])
    driven = ep[schema.INTERVENTION].reshape(-1).astype(bool) if schema.INTERVENTION in ep else np.zeros(n, bool)
    takeovers = int(np.sum(driven[1:] & ~driven[:-1]) + (1 if n and driven[0] else 0))
    success = bool(ep[schema.SUCCESS].reshape(-1).any()) if schema.SUCCESS in ep else None
    task = tasks.get(int(ep["task_index"][0]), "") if "task_index" in ep and n else ""
    return EpisodeSummary(e, n, takeovers, float(driven.mean()) if n else 0.0, success, task)


def summary_table(rows: list[EpisodeSummary]) -> str:
    lines = [f"{'episode':>7} {'frames':>6} {'takeovers':>9} {'expert share':>12} {'success':>7}  task"]
    for r in rows:
        ok = "-" if r.success is None else ("yes" if r.success else "no")
        lines.append(f"{r.episode:>7} {r.frames:>6} {r.takeovers:>9} {100 * r.expert_share:>11.0f}% {ok:>7}  {r.task}")
    if rows:
        n = len(rows)
        known = [r.success for r in rows if r.success is not None]
        rate = f"{100 * np.mean(known):.0f}%" if known else "-"
        lines.append(f"{n} episodes, {sum(r.frames for r in rows)} frames, "
                     f"{np.mean([r.takeovers for r in rows]):.2f} takeovers per episode, "
                     f"expert share {100 * np.mean([r.expert_share for r in rows]):.0f}%, success {rate}")
    return "\n".join(lines)


def plot_takeovers(rows: list[EpisodeSummary], path: Path) -> Path:
    """Takeovers per episode and the expert's share over the recording's history (episode order)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.5))
    x = [r.episode for r in rows]
    colours = ["tab:green" if r.success else ("tab:red" if r.success is False else "tab:gray") for r in rows]
    ax.bar(x, [r.takeovers for r in rows], color=colours)
    ax.set_xlabel("episode (recording order)")
    ax.set_ylabel("expert takeovers")
    twin = ax.twinx()
    twin.plot(x, [100 * r.expert_share for r in rows], color="black", marker=".", linewidth=1)
    twin.set_ylabel("frames the expert drove (%)")
    twin.set_ylim(0, 100)
    ax.set_title("takeovers per episode (bars: green success, red failure); line: expert share")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def log_episodes(root: Path, episodes: list[int] | None, recording) -> list[int]:
    """Log the episodes (all when None) of the dataset at `root` into a rerun RecordingStream."""
    import rerun as rr

    meta, table = _load(root)
    features = meta["features"]
    fps = float(meta.get("fps") or 50)
    all_episodes = [int(e) for e in np.unique(table["episode_index"])]
    chosen = all_episodes if episodes is None else list(episodes)
    missing = sorted(set(chosen) - set(all_episodes))
    if missing:
        raise ViewError(f"{root} has no episode {', '.join(map(str, missing))} (it has {_ranges(all_episodes)})")
    cameras = [k for k, f in features.items() if f.get("dtype") in ("video", "image")]
    frames = {}
    if cameras:
        from lerobot.datasets.lerobot_dataset import LeRobotDatasetMetadata

        from training.datasets.frame_cache import decoded_frames

        lr_meta = LeRobotDatasetMetadata(f"local/{Path(root).name}", root=Path(root))
        for key in cameras:
            h, w = features[key]["shape"][:2]
            frames[key] = decoded_frames(Path(root), lr_meta, key, (int(h), int(w)), progress=False)
    tasks = _tasks(root)
    names = {key: (features.get(key, {}).get("names") or None) for key in
             (schema.STATE, schema.ACTION, schema.EXPERT_ACTION, schema.POLICY_ACTION)}
    for e in chosen:
        rows = np.flatnonzero(table["episode_index"] == e)
        ep = {k: v[rows] for k, v in table.items()}
        prefix = f"episode_{e}"
        index = ep["frame_index"].astype(np.int64)
        seconds = ep["timestamp"].astype(np.float64) if "timestamp" in ep else index / fps
        times = [rr.TimeColumn("frame", sequence=index), rr.TimeColumn("time", duration=seconds)]
        for key, entity in ((schema.STATE, "state"), (schema.ACTION, "action"),
                            (schema.EXPERT_ACTION, "expert_action"), (schema.POLICY_ACTION, "policy_action")):
            if key not in ep:
                continue
            values = ep[key].reshape(len(rows), -1).astype(np.float64)
            if key == schema.POLICY_ACTION and schema.POLICY_VALID in ep:  # no proposal: a gap, not a value
                values[~ep[schema.POLICY_VALID].reshape(-1).astype(bool)] = np.nan
            if key == schema.EXPERT_ACTION and schema.EXPERT_LABEL in ep:
                values[~ep[schema.EXPERT_LABEL].reshape(-1).astype(bool)] = np.nan
            recording.send_columns(f"{prefix}/{entity}", indexes=times, columns=rr.Scalars.columns(scalars=values))
            if names[key]:
                recording.log(f"{prefix}/{entity}", rr.SeriesLines(names=list(names[key])), static=True)
        summary = _summary(e, ep, tasks)
        if schema.INTERVENTION in ep:
            driven = ep[schema.INTERVENTION].reshape(-1).astype(np.float64)
            recording.log(f"{prefix}/driver/expert", rr.SeriesLines(colors=[EXPERT_COLOUR], widths=[6.0],
                                                                     names=["expert drives"]), static=True)
            recording.send_columns(f"{prefix}/driver/expert", indexes=times,
                                   columns=rr.Scalars.columns(scalars=np.where(driven > 0, 1.0, np.nan)))
            recording.log(f"{prefix}/driver/policy", rr.SeriesLines(colors=[POLICY_COLOUR], widths=[2.0],
                                                                     names=["policy drives"]), static=True)
            recording.send_columns(f"{prefix}/driver/policy", indexes=times,
                                   columns=rr.Scalars.columns(scalars=np.where(driven > 0, np.nan, 0.0)))
        outcome = {None: "outcome not recorded", True: "success", False: "failure"}[summary.success]
        recording.set_time("frame", sequence=int(index[-1]))
        recording.set_time("time", duration=float(seconds[-1]))
        recording.log(f"{prefix}/outcome", rr.TextLog(
            f"episode {e}: {outcome}, {summary.frames} frames, {summary.takeovers} takeovers, expert drove "
            f"{100 * summary.expert_share:.0f}% ({summary.task})",
            level=rr.TextLogLevel.INFO if summary.success else rr.TextLogLevel.WARN))
        for key, all_frames in frames.items():
            camera = key.removeprefix(schema.IMAGE_PREFIX)
            for row, t, s in zip(ep["index"].astype(np.int64), index, seconds):
                recording.set_time("frame", sequence=int(t))
                recording.set_time("time", duration=float(s))
                recording.log(f"{prefix}/cameras/{camera}", rr.Image(np.asarray(all_frames[row])).compress(90))
    return chosen


def _ranges(values: list[int]) -> str:
    return f"episodes {values[0]}..{values[-1]}" if values else "no episodes"


def no_display() -> bool:
    """No X or Wayland display: the native viewer cannot open, the web viewer can."""
    import os

    return not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def view(root: Path, episodes: list[int] | None = None, save: Path | None = None, web: bool | None = None,
         web_port: int = 9090) -> str:
    """Show the episodes: into an .rrd file (`save`), the web viewer (`web`, or no display), or the native
    viewer. Returns what to tell the user."""
    import rerun as rr

    recording = rr.RecordingStream("vla_il_dataset", recording_id=str(Path(root).resolve()))
    if save is not None:
        Path(save).parent.mkdir(parents=True, exist_ok=True)
        recording.save(str(save))
    else:
        web = web if web is not None else no_display()
        if not web:
            recording.spawn()
    shown = log_episodes(root, episodes, recording)
    what = f"{len(shown)} episode(s) of {root}"
    if save is not None:
        recording.flush()
        return f"wrote {what} to {save} (open it with: rerun {save})"
    if web:
        from urllib.parse import quote

        url = recording.serve_grpc()
        rr.serve_web_viewer(web_port=web_port, open_browser=False, connect_to=url)
        return f"{what}: open http://localhost:{web_port}/?url={quote(url, safe=':/')} in a browser (Ctrl-C to stop)"
    return f"{what}: in the rerun viewer"
