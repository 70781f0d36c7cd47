"""`vla-il demo`: the whole loop on the simulated ALOHA, in one command.

  1. collect expert demonstrations (the scripted expert)          -> data/demos (LeRobot v3)
  2. train BC on them, export a bundle                            -> train/round_0, bundles/round_0
  3. bring the ROS graph up in lockstep: sim_bridge, policy_node, intervention_mux,
     teleop_sim_expert (the scripted expert with the gate that plays the human), dagger_recorder
     (the same executables and parameter files as launch/dagger_teleop.launch.py)
  4. K rounds of HG-DAgger: the policy drives episodes, the expert takes over when it drifts and
     hands back, the recorder writes every frame with who drove; then train on all rounds' expert
     segments plus the demos (a new network each round, BC's recipe; or continuing the last one),
     export, and hot-load it into the running policy node through its load_policy service
  5. evaluate BC and every round on the same held-out seeds; and BC trained on as many expert
     labels as the last round had (more demonstrations): the comparison at equal labels
  6. print the table; write report.md, results.json and success_vs_labels.png

Everything lands in --out; progress bars throughout.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vla_il.rosgraph import CONFIG, LATCHED, RELIABLE, NodeProcess, Probe, wait_until

# What differs between the two policies the demo trains; a value given on the command line wins.
POLICY_DEFAULTS: dict[str, dict[str, Any]] = {
    # the state-based chunking MLP (joint positions and the sim's object poses): the recipe
    # benchmarks/hg_dagger_seeds.py measures (docs/results/hg_dagger_seeds)
    "mlp": {"demos": 10, "rounds": 4, "episodes_per_round": 12, "eval_episodes": 40, "chunk_size": 5, "epochs": 60,
            "round_init": "scratch", "round_epochs": 30, "learning_rate": 1e-3, "lr_schedule": "cosine"},
    # the tiny VLA from the top camera's pixels and the grippers' openings (VLA_RECIPE), sized to finish in 40
    # minutes on a 2-core CPU: round 0 trained long enough to succeed (at 8 epochs on 40 demos it never did:
    # docs/results/vla_demo), each round continues the last VLA for a few epochs rather than training a new one
    # on the growing data; the README gives the full-size recipe for a GPU
    "vla": {"demos": 50, "rounds": 2, "episodes_per_round": 8, "eval_episodes": 20, "chunk_size": 10, "epochs": 32,
            "round_init": "continue", "round_epochs": 4, "learning_rate": 1e-3, "lr_schedule": "constant"},
}
# What a new VLA reads besides its camera, and how its weights settle, as docs/results/vla_hg_dagger_seeds
# measured them: the grippers' openings (ALOHA's state 6 and 13: the expert's corrections re-open a gripper shut
# too early, which a VLA that cannot see the opening cannot learn), hidden from half the training samples, and
# the weights' moving average. A continued fit anneals (cosine) whatever --lr-schedule round 0 used.
VLA_RECIPE: dict[str, Any] = {"state_keep": (6, 13), "state_keep_dropout": 0.5, "ema_decay": 0.999}


@dataclass
class DemoConfig:
    task: str = "transfer_cube"
    out: Path = Path("./output/demo")
    policy: str = "mlp"  # mlp (state) | vla (camera images)
    # None: the policy's default (POLICY_DEFAULTS)
    demos: int | None = None  # expert demonstrations for BC
    rounds: int | None = None  # HG-DAgger rounds
    episodes_per_round: int | None = None
    eval_episodes: int | None = None
    eval_seed: int = 100_000  # held out: collection uses 0.., rounds 10_000..
    chunk_size: int | None = None
    residual: bool = False  # predict joint targets relative to the joint positions (mlp)
    epochs: int | None = None
    # each round's fit: a new network on all labels with BC's recipe (scratch), or the last one continued for
    # round_epochs (continue); which pays more is measured in docs/results/hg_dagger_seeds
    round_init: str | None = None
    round_epochs: int | None = None
    learning_rate: float | None = None
    # mlp: cosine (every fit anneals: less spread between runs than a constant rate); vla: constant for round 0,
    # its weights' moving average kept (VLA_RECIPE)
    lr_schedule: str | None = None
    # (mlp) every fit keeps its epoch of lowest validation loss among the second half of its epochs (None: the
    # last epoch): a few short correction segments can make an early, poor epoch look best
    early_stopping_after: float | None = 0.5
    # every policy plays its chunks with ACT's temporal ensembling (a chunk every tick, the overlapping predictions
    # blended) rather than each chunk played out: through the mux it lifted every VLA of
    # docs/results/vla_hg_dagger_seeds about 20 points (round 0 of seed 0: 76% against 53%)
    temporal_ensembling: bool = True
    hidden_dim: int = 512  # (mlp) width of the MLP (narrower fit the demos of transfer_cube less well)
    ensemble: int = 1  # (mlp) MLPs per policy, each fit on its own, outputs averaged
    camera: str = "top"  # (vla) the camera it sees, published by the sim as sensor_msgs/Image
    # (vla) SigLIP and Qwen2 weights (hub ids or local directories) instead of the tiny preset: the GPU recipe
    vla_backbones: tuple[str, str] | None = None
    vla_lora_rank: int = 0  # (vla, with backbones) LoRA adapters on the LLM, its base frozen
    vla_freeze_vision: bool = False
    image_size: tuple[int, int] = (96, 128)  # (vla) rendered, recorded and seen at this size
    # intervention: learn from the expert's takeovers only (HG-DAgger, what a human gives);
    # expert: from every state the expert labelled (the sim expert labels all of them: DAgger)
    labels: str = "intervention"
    workers: int = 2
    display: bool = False  # the live view (rerun web viewer) of the graph while the rounds run
    display_port: int = 9090
    episode_timeout_s: float = 60.0
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.policy not in POLICY_DEFAULTS:
            raise DemoError(f"--policy {self.policy}: one of {', '.join(POLICY_DEFAULTS)}")
        for name, value in POLICY_DEFAULTS[self.policy].items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        self.image_size = tuple(self.image_size)

    @property
    def ensembles(self) -> bool:
        """The policies play their chunks with temporal ensembling (chunks of one action have nothing to blend)."""
        return self.temporal_ensembling and self.chunk_size > 1

    @property
    def baseline_epochs(self) -> int:
        """The equal-label baseline's fit: BC's epochs where the rounds train new policies, the epochs the rounds
        added where they continue the last one (the baseline then continues round 0)."""
        return self.rounds * self.round_epochs if self.round_init == "continue" else self.epochs


@dataclass
class RoundResult:
    name: str
    expert_labels: int
    bundle: str
    success: int = 0
    episodes: int = 0
    interval: tuple[float, float] = (0.0, 1.0)
    interventions_per_episode: float | None = None  # in the round's recorded episodes that trained it
    intervention_frames: int = 0
    attempt_success: float | None = None  # episodes of the round that ended in success (with help)
    # the expert's takeovers per episode this policy needs on the held-out seeds, gated as in the rounds
    # (mean, half-width of its 95% interval): the round's own few episodes only hint at it
    help_per_episode: tuple[float, float] | None = None
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.success / self.episodes if self.episodes else 0.0


def lockstep_overrides(node: str) -> dict[str, Any]:
    """What mode:=lockstep changes for `node` (config/lockstep.yaml: the launch file applies the same file)."""
    import yaml

    data = yaml.safe_load((CONFIG / "lockstep.yaml").read_text()) or {}
    return dict((data.get(node) or {}).get("ros__parameters") or {})


class DemoError(RuntimeError):
    pass


def run_demo(cfg: DemoConfig) -> dict[str, Any]:
    if cfg.round_init not in ("scratch", "continue"):
        raise DemoError(f"--round-init {cfg.round_init}: scratch or continue")
    out = Path(cfg.out).expanduser().resolve()
    if out.exists() and any(out.iterdir()):
        if not cfg.overwrite:
            raise DemoError(f"{out} exists and is not empty (choose another --out, or --overwrite)")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / "logs").mkdir()
    (out / "demo_config.json").write_text(json.dumps(asdict(cfg), indent=2, default=str))
    t0 = time.monotonic()
    env_name = f"aloha:{cfg.task}"

    seen = f" ({cfg.camera} camera, {cfg.image_size[0]}x{cfg.image_size[1]})" if cfg.policy == "vla" else ""
    _stage(1, f"collect {cfg.demos} expert demonstrations of {cfg.task}{seen}")
    demos = out / "data" / "demos"
    report = _collect(cfg, cfg.demos, demos)
    print(report.line())

    _stage(2, "train BC on them and export the bundle")
    rounds: list[RoundResult] = []
    ckpt, labels = _train(cfg, out / "train" / "round_0", [demos], None, env_name, cfg.epochs)
    bundle = _export(cfg, ckpt, out / "bundles" / "round_0")
    rounds.append(RoundResult("BC", labels, str(bundle)))
    first = ckpt  # the equal-label baseline continues it where the rounds do

    _stage(3, "bring the ROS graph up (lockstep): sim_bridge, policy_node, intervention_mux, "
              "teleop_sim_expert, dagger_recorder")
    record_dir = out / "recording"
    graph = SimGraph(cfg.task, bundle, record_dir, out / "logs", cameras=_cameras(cfg), image_size=cfg.image_size,
                     display_port=cfg.display_port if cfg.display else None)
    try:
        graph.start()
        if cfg.display:
            print(f"live view: open http://localhost:{cfg.display_port}/?url=rerun%2Bhttp://localhost:9876/proxy in a "
                  "browser (display_node)")
        for k in range(1, cfg.rounds + 1):
            _stage(4, f"HG-DAgger round {k}/{cfg.rounds}: {cfg.episodes_per_round} episodes, the policy drives")
            t_round = time.monotonic()
            episodes = graph.run_episodes(cfg.episodes_per_round, first_seed=10_000 * k,
                                          timeout_s=cfg.episode_timeout_s, desc=f"round {k}")
            continued = cfg.round_init == "continue"
            ckpt, labels = _train(cfg, out / "train" / f"round_{k}", [record_dir / "dataset", demos],
                                  ckpt if continued else None, env_name, cfg.round_epochs if continued else cfg.epochs)
            bundle = _export(cfg, ckpt, out / "bundles" / f"round_{k}")
            ok, message = graph.load_policy(bundle)
            if not ok:
                raise DemoError(f"the policy node refused the new bundle: {message}")
            print(f"policy_node: {message}")
            interventions = [e["interventions"] for e in episodes]
            rounds.append(RoundResult(
                f"{'HG-DAgger' if cfg.labels == 'intervention' else 'DAgger'} {k}", labels, str(bundle),
                interventions_per_episode=sum(interventions) / len(interventions),
                intervention_frames=sum(e["intervention_frames"] for e in episodes),
                attempt_success=sum(e["success"] for e in episodes) / len(episodes),
                seconds=time.monotonic() - t_round,
            ))
    finally:
        problems = graph.stop()
    if problems:
        print("node problems during the run:\n  " + "\n  ".join(problems))

    _stage(5, f"evaluate every policy on the same {cfg.eval_episodes} held-out seeds")
    baseline = _equal_label_baseline(cfg, out, env_name, rounds[-1].expert_labels, report, first)
    for r in [*rounds, baseline]:
        _evaluate(cfg, r)

    _stage(6, "report")
    results = {"config": asdict(cfg), "rounds": [_round_dict(r) for r in rounds],
               "bc_equal_labels": _round_dict(baseline), "minutes": (time.monotonic() - t0) / 60}
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    table = _table(rounds, baseline)
    print(table)
    _plot(rounds, baseline, out / "success_vs_labels.png")
    _markdown(cfg, rounds, baseline, table, out / "report.md", results["minutes"])
    print(f"wrote {out / 'report.md'}, {out / 'success_vs_labels.png'}, {out / 'results.json'} "
          f"({results['minutes']:.1f} min)")
    return results


# ---------------------------------------------------------------------------------------------- stages
_T0 = time.monotonic()


def _stage(n: int, text: str) -> None:
    print(f"\n[{n}/6] {text}  (t={(time.monotonic() - _T0) / 60:.1f} min)", flush=True)


def _cameras(cfg: DemoConfig) -> tuple[str, ...]:
    return (cfg.camera,) if cfg.policy == "vla" else ()


def _collect(cfg: DemoConfig, episodes: int, path: Path):
    import os

    from sim.collect import collect

    # the episodes played in two processes while this one writes: the same dataset, sooner
    return collect(cfg.task, episodes, path, cameras=_cameras(cfg), image_size=cfg.image_size, seed=0,
                   workers=min(2, os.cpu_count() or 1))


def _train(cfg: DemoConfig, out: Path, datasets: list[Path], previous: Path | None, env_name: str,
           epochs: int) -> tuple[Path, int]:
    """Train on the expert labels of `datasets` (continuing from `previous`); (best checkpoint, labels)."""
    if cfg.policy == "vla":
        return _train_vla(cfg, out, datasets, previous, epochs)
    from training.checkpoint import load_checkpoint
    from training.config import ILConfig
    from training.il.hg_dagger import HGDAgger

    config = ILConfig.dagger(
        dagger_mode="human_gated", dagger_labels=cfg.labels, lr_schedule=cfg.lr_schedule,
        bc_epochs=epochs, learning_rate=cfg.learning_rate, batch_size=256,
        bc_early_stopping=cfg.early_stopping_after is not None, bc_early_stopping_after=cfg.early_stopping_after or 0.0,
        hidden_dim=cfg.hidden_dim, ensemble_size=cfg.ensemble, action_chunk_size=cfg.chunk_size,
        temporal_aggregation=cfg.ensembles, action_residual=cfg.residual,
        eval_episodes=0, output_dir=str(out),
    )
    policy = load_checkpoint(previous)[0] if previous is not None else None
    trainer = HGDAgger(config, policy, env_name=env_name, provenance={"demo": True})
    trainer.train(datasets)
    return out / "best", trainer.stats.labels


def _train_vla(cfg: DemoConfig, out: Path, datasets: list[Path], previous: Path | None,
               epochs: int) -> tuple[Path, int]:
    """The VLA on the expert's labels in `datasets` (their camera frames, decoded once and cached beside each
    dataset): the expert-driven frames (HG-DAgger) or every expert-labelled one (DAgger), each frame's chunk
    the next labels of its own segment."""
    import torch

    from training.datasets.lerobot_dataset import AlohaDataset
    from training.il.vla_trainers import fit_vla
    from vla_il_core.schema import EXPERT_ACTION

    parts = [AlohaDataset(d, split="all", chunk_size=cfg.chunk_size, cameras=(cfg.camera,), labels=cfg.labels,
                          action_key=EXPERT_ACTION) for d in datasets]
    data = parts[0] if len(parts) == 1 else torch.utils.data.ConcatDataset(parts)
    tuning = {"lora_rank": cfg.vla_lora_rank, "freeze_vision": cfg.vla_freeze_vision} if cfg.vla_backbones else {}
    return fit_vla(data, out, cameras=(cfg.camera,), image_size=cfg.image_size, chunk_size=cfg.chunk_size,
                   epochs=epochs, task=cfg.task, learning_rate=cfg.learning_rate,
                   lr_schedule=cfg.lr_schedule, previous=previous,
                   backbones=tuple(cfg.vla_backbones) if cfg.vla_backbones else None, **VLA_RECIPE, **tuning)


def _export(cfg: DemoConfig, checkpoint: Path, bundle: Path) -> Path:
    """The bundle, recommending the demo's playback."""
    from training.export.onnx_export import export_checkpoint

    export_checkpoint(checkpoint, bundle, overwrite=True,
                      temporal_ensembling=cfg.ensembles)
    return bundle


def _equal_label_baseline(cfg: DemoConfig, out: Path, env_name: str, labels: int, report,
                          first: Path) -> RoundResult:
    """BC on more expert demonstrations, until it has as many expert labels as the last round: a new policy
    with BC's recipe where the rounds train new ones (--round-init scratch); where they continue the last one,
    round 0 (`first`) continued on them for as many epochs as the rounds added (equal labels and about equal
    steps, so that HG-DAgger's gain is not the longer training's)."""
    per_demo = report.frames / max(report.saved, 1)
    n = max(cfg.demos, math.ceil(labels / per_demo))
    _stage(5, f"BC at equal labels: {n} expert demonstrations (~{labels} labels)")
    path = out / "data" / "demos_equal_labels"
    _collect(cfg, n, path)
    ckpt, got = _train(cfg, out / "train" / "bc_equal_labels", [path], first if cfg.round_init == "continue" else None,
                       env_name, cfg.baseline_epochs)
    bundle = _export(cfg, ckpt, out / "bundles" / "bc_equal_labels")
    return RoundResult("BC, equal labels", got, str(bundle))


def _evaluate(cfg: DemoConfig, r: RoundResult) -> None:
    """Success of the policy alone on the held-out seeds; then, on the same seeds, how often the sim
    expert takes over when it watches this policy with the teleop_sim_expert node's rule."""
    from sim.evaluation import BundleFactory, GatedFactory, default_gate_config, evaluate

    factory = BundleFactory(r.bundle)
    seeds = range(cfg.eval_seed, cfg.eval_seed + cfg.eval_episodes)
    env_kwargs = factory.env_kwargs()
    result = evaluate(cfg.task, factory, seeds, policy_name=r.name, workers=cfg.workers, env_kwargs=env_kwargs)
    r.success, r.episodes, r.interval = result.successes, result.n, result.interval
    print(result.line())
    gated = evaluate(cfg.task, GatedFactory(factory, default_gate_config()), seeds, policy_name=f"{r.name} + expert",
                     workers=cfg.workers, env_kwargs=env_kwargs)
    r.help_per_episode = gated.interventions
    r.extra["with_expert"] = gated.summary()
    print(gated.line())


# ---------------------------------------------------------------------------------------------- the graph
class SimGraph:
    """Our nodes as processes, in lockstep, with a probe that drives episodes through services.

    `cameras`: the sim renders and publishes them (sensor_msgs/Image, `image_size`) and the recorder records
    them; the bundle reads the ones it was trained on."""

    def __init__(self, task: str, bundle: Path, record_dir: Path, log_dir: Path, cameras: tuple[str, ...] = (),
                 image_size: tuple[int, int] = (480, 640), episode_length: int | None = None,
                 display_port: int | None = None) -> None:
        """`display_port`: also start the live view (display_node), its web viewer on that port."""
        self.task, self.bundle, self.record_dir, self.log_dir = task, bundle, record_dir, log_dir
        self.display_port = display_port
        self.cameras, self.image_size = tuple(cameras), tuple(image_size)
        self.episode_length = episode_length  # None: the sim's parameter file's
        self.nodes: dict[str, NodeProcess] = {}
        self.probe: Probe | None = None

    def start(self) -> None:
        from vla_il_msgs.msg import EpisodeEvent, InterventionEvent

        h, w = self.image_size
        images = {"cameras": list(self.cameras), "image_height": h, "image_width": w}
        specs = {
            "sim_bridge": (["sim_aloha.yaml"], {"task": self.task, "mode": "lockstep", **images,
                                                **({"episode_length": self.episode_length}
                                                   if self.episode_length else {}),
                                                **lockstep_overrides("sim_bridge")}),
            # lockstep: config/lockstep.yaml's overrides, as dagger_teleop.launch.py mode:=lockstep applies them
            "policy_node": (["policy_node.yaml"], {"bundle": str(self.bundle), **lockstep_overrides("policy_node")}),
            "intervention_mux": (["intervention_mux.yaml"], lockstep_overrides("intervention_mux")),
            "teleop_sim_expert": (["teleop_sim_expert.yaml"], {"task": self.task,
                                                               **lockstep_overrides("teleop_sim_expert")}),
            "dagger_recorder": (["dagger_recorder.yaml"], {"record_dir": str(self.record_dir), "sim_task": self.task,
                                                           **images, **lockstep_overrides("dagger_recorder")}),
        }
        if self.display_port is not None:
            specs["display_node"] = (["display_node.yaml"], {"cameras": list(self.cameras) or [""],
                                                             "web_port": self.display_port,
                                                             **lockstep_overrides("display_node")})
        for name, (files, params) in specs.items():
            self.nodes[name] = NodeProcess(name, self.log_dir, [self._params_file(name, files[0], params)])
        self.probe = Probe("vla_il_demo")
        self.sim_events = self.probe.collect(EpisodeEvent, "sim/episode", RELIABLE)
        from vla_il_msgs.msg import SimState

        self._sim_heard = time.monotonic()  # the last sim/state seen (the sim repeats it while an episode waits)

        def heard(_msg) -> None:
            self._sim_heard = time.monotonic()

        self.probe.node.create_subscription(SimState, "sim/state", heard, RELIABLE)
        self.recorder_events = self.probe.collect(EpisodeEvent, "recorder/episode", LATCHED)
        self.switches = self.probe.collect(InterventionEvent, "intervention", LATCHED)
        from std_srvs.srv import Trigger
        from vla_il_msgs.srv import LoadPolicy, ResetSim, StartEpisode, StopEpisode

        self._types = {"trigger": Trigger, "load": LoadPolicy, "reset": ResetSim, "start": StartEpisode,
                       "stop": StopEpisode}
        for service in ("sim/reset", "policy_node/load_policy", "teleop_sim_expert/reset",
                        "dagger_recorder/start_episode"):
            if not self.probe.wait_for_service(self._srv_type(service), service, 60.0):
                self._fail(f"service {service} did not come up in 60 s")
        # the recorder loads lerobot (and torch) aside: it says when it can record
        if not self.nodes["dagger_recorder"].wait_for_log("ready:", timeout=300.0):
            self._fail("the recorder did not get ready in 300 s")
        # in lockstep the sim starts an episode as it comes up (seed 0, the policy driving): let it end,
        # so that every recorded episode starts with our reset
        # A fast lockstep graph can end it before this probe listens to sim/episode; an episode in progress
        # is heard at least every 0.5 s (the sim repeats its state while nobody commands), so 2 s of
        # silence from a sim that is matched means it has ended too.
        def pre_episode_over() -> bool:
            silent = time.monotonic() - self._sim_heard > 2.0
            matched = self.probe.node.count_publishers("sim/state") > 0
            return len(self.sim_events) > 0 or (silent and matched) or self._any_dead()

        if not wait_until(pre_episode_over, 120.0, 0.05):
            self._fail("the sim's first episode did not end in 120 s (the graph stalled)")
        time.sleep(1.0)  # every node has seen that episode end before the first one we record starts

    def _params_file(self, node: str, base: str, overrides: dict[str, Any]) -> Path:
        """The launch file's parameter file with the demo's values written in (a `-p name:=[]` on the
        command line has no type and would not override the file's list), kept beside the logs."""
        import yaml

        data = yaml.safe_load((CONFIG / base).read_text())
        data["/**"]["ros__parameters"].update(overrides)
        path = self.log_dir / f"{node}.params.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    def _srv_type(self, service: str):
        t = self._types
        return {"sim/reset": t["reset"], "policy_node/load_policy": t["load"], "teleop_sim_expert/reset": t["trigger"],
                "dagger_recorder/start_episode": t["start"], "dagger_recorder/stop_episode": t["stop"]}[service]

    def _call(self, service: str, request, timeout: float = 30.0, idempotent: bool = False):
        self._check_alive()
        return self.probe.call(self._srv_type(service), service, request, timeout, idempotent=idempotent)

    def _check_alive(self) -> None:
        dead = [n for n, p in self.nodes.items() if p.proc.poll() is not None]
        if dead:
            self._fail(f"node(s) died: {', '.join(dead)}")

    def _fail(self, why: str) -> None:
        tails = "\n".join(f"--- {n} ({p.log_path}):\n" + "\n".join(p.log().splitlines()[-8:])
                          for n, p in self.nodes.items())
        raise DemoError(f"{why}\n{tails}")

    def run_episodes(self, n: int, first_seed: int, timeout_s: float, desc: str) -> list[dict[str, Any]]:
        from training.progress import tqdm

        t = self._types
        results = []
        for i in tqdm(range(n), desc=desc, unit="ep"):
            seed = first_seed + i
            saved_before = self._saved_count()
            switches_before = len(self.switches)
            self._call("teleop_sim_expert/reset", t["trigger"].Request(), idempotent=True)
            started = self._call("dagger_recorder/start_episode", t["start"].Request(task=""))
            if not started.success:
                self._fail(f"the recorder did not start an episode: {started.message}")
            reset = self._call("sim/reset", t["reset"].Request(task=self.task, seed=seed))
            if not reset.success:
                self._fail(f"sim/reset refused: {reset.message}")
            # the sim says done (success or the episode's length); the recorder then saves the episode
            if not wait_until(lambda before=saved_before: self._saved_count() > before or self._any_dead(),
                              timeout_s, 0.05):
                self._call("dagger_recorder/stop_episode", t["stop"].Request(task_success=False, discard=True))
                self._fail(f"episode with seed {seed} did not finish in {timeout_s} s (the graph stalled)")
            self._check_alive()
            event = self._last_saved()
            engaged = sum(1 for s in self.switches[switches_before:] if s.driver == "expert")
            results.append({"seed": seed, "success": bool(event.success), "frames": int(event.num_frames),
                            "intervention_frames": int(event.intervention_frames), "interventions": engaged,
                            "dropped_frames": int(event.dropped_frames)})
        return results

    def _any_dead(self) -> bool:
        return any(p.proc.poll() is not None for p in self.nodes.values())

    def _saved(self) -> list:
        return [e for e in self.recorder_events if e.event in ("saved", "failed", "discarded")]

    def _saved_count(self) -> int:
        return len(self._saved())

    def _last_saved(self):
        event = self._saved()[-1]
        if event.event != "saved":
            self._fail(f"the recorder did not save the episode: {event.event}: {event.message}")
        return event

    def load_policy(self, bundle: Path) -> tuple[bool, str]:
        from vla_il.rosgraph import call_load_policy

        self._check_alive()
        return call_load_policy("policy_node/load_policy", str(bundle), timeout=30.0, probe=self.probe)

    def stop(self) -> list[str]:
        problems = [f"{n} exited with {p.proc.returncode} (log: {p.log_path})"
                    for n, p in self.nodes.items() if p.proc.poll() is not None]
        for p in self.nodes.values():
            p.stop()
        if self.probe is not None:
            self.probe.close()
        return problems


# ---------------------------------------------------------------------------------------------- report
def _round_dict(r: RoundResult) -> dict[str, Any]:
    d = asdict(r)
    d["success_rate"] = r.rate
    return d


def _table(rounds: list[RoundResult], baseline: RoundResult) -> str:
    lines = [f"{'policy':<18}{'expert labels':>14}{'success':>10}{'Wilson 95%':>14}{'takeovers/ep':>16}"
             f"{'takeovers/ep':>16}",
             f"{'':<56}{'in its round':>16}{'held-out':>16}",
             "-" * 88]
    drove = {k: rounds[k + 1].interventions_per_episode for k in range(len(rounds) - 1)}  # round k+1 ran policy k
    for k, r in enumerate([*rounds, baseline]):
        iv = f"{drove[k]:.2f}" if drove.get(k) is not None else "-"
        helped = "-" if r.help_per_episode is None else f"{r.help_per_episode[0]:.2f} +-{r.help_per_episode[1]:.2f}"
        lo, hi = r.interval
        lines.append(f"{r.name:<18}{r.expert_labels:>14}{100 * r.rate:>9.0f}%{f'{100 * lo:.0f}-{100 * hi:.0f}%':>14}"
                     f"{iv:>16}{helped:>16}")
    last = rounds[-1]
    method = last.name.rsplit(" ", 1)[0]  # HG-DAgger, or DAgger (--labels expert)
    lines.append(f"{method} (last round) vs BC at equal labels: {100 * (last.rate - baseline.rate):+.0f} points "
                 f"({last.expert_labels} vs {baseline.expert_labels} labels)")
    helps = [r.help_per_episode[0] for r in rounds if r.help_per_episode is not None]
    if len(helps) == len(rounds) > 1:
        falls = all(b < a for a, b in zip(helps, helps[1:], strict=False))
        lines.append("expert takeovers per episode on the held-out seeds, policy by policy: "
                     + " -> ".join(f"{h:.2f}" for h in helps) + (" (falling every round)" if falls else ""))
    return "\n".join(lines)


def _plot(rounds: list[RoundResult], baseline: RoundResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    x = [r.expert_labels for r in rounds]
    y = [r.rate for r in rounds]
    err = [[max(0.0, r.rate - r.interval[0]) for r in rounds], [max(0.0, r.interval[1] - r.rate) for r in rounds]]
    ax1.errorbar(x, y, yerr=err, marker="o", capsize=4, label="BC, then HG-DAgger rounds")
    b_err = [[max(0.0, baseline.rate - baseline.interval[0])], [max(0.0, baseline.interval[1] - baseline.rate)]]
    ax1.errorbar([baseline.expert_labels], [baseline.rate], yerr=b_err, capsize=4, marker="s", color="C3",
                 label="BC with as many labels")
    ax1.set_xlabel("expert-labelled frames")
    ax1.set_ylabel("success rate (held-out seeds, Wilson 95%)")
    ax1.set_ylim(-0.02, 1.02)
    ax1.legend(loc="best")  # the low rates of a short run sit where "lower right" would be
    ax1.grid(alpha=0.3)
    helped = [(k, r.help_per_episode) for k, r in enumerate(rounds) if r.help_per_episode is not None]
    if helped:
        ax2.errorbar([k for k, _ in helped], [h[0] for _, h in helped], yerr=[h[1] for _, h in helped], marker="o",
                     capsize=4, label="on the held-out seeds")
    drove = [(k - 1, r.interventions_per_episode) for k, r in enumerate(rounds)
             if r.interventions_per_episode is not None]
    ax2.plot([k for k, _ in drove], [v for _, v in drove], "o--", mfc="none", color="C1",
             label="in its round's episodes (the recorded ones)")
    ax2.set_xlabel("policy (0: BC, k: after HG-DAgger round k)")
    ax2.set_ylabel("expert takeovers per episode")
    ax2.set_xticks(range(len(rounds)))
    ax2.legend()
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _policy_words(cfg: DemoConfig) -> str:
    if cfg.policy == "vla":
        h, w = cfg.image_size
        model = (f"a VLA ({cfg.vla_backbones[0]} + {cfg.vla_backbones[1]} + action head)" if cfg.vla_backbones
                 else "the tiny VLA (SigLIP-style vision tower + Qwen2 decoder + action head)")
        playback = "temporal ensembling" if cfg.ensembles else "each played out"
        return (f"{model} from the {cfg.camera} camera's {h}x{w} pixels and the grippers' openings, chunks of "
                f"{cfg.chunk_size} ({playback}); the "
                "sim_bridge published the camera as sensor_msgs/Image, the policy node ran the exported VLA bundle on "
                "it and the recorder recorded it")
    playback = ", temporal ensembling" if cfg.ensembles else ""
    return f"a state-based chunking policy (MLP, chunk {cfg.chunk_size}{playback})"


def _markdown(cfg: DemoConfig, rounds: list[RoundResult], baseline: RoundResult, table: str, path: Path,
              minutes: float) -> None:
    refit = "a new network, BC's recipe" if cfg.round_init == "scratch" else "continuing the last policy"
    baseline_fit = (refit if cfg.round_init == "scratch"
                    else f"round 0 continued on them for the rounds' {cfg.baseline_epochs} epochs")
    path.write_text(f"""# vla-il demo: HG-DAgger on the simulated ALOHA ({cfg.task})

BC on {cfg.demos} scripted-expert demonstrations trained {_policy_words(cfg)}.
Then {cfg.rounds} rounds of {cfg.episodes_per_round} episodes ran through the ROS graph in lockstep
(sim_bridge, policy_node, intervention_mux, teleop_sim_expert, dagger_recorder): the policy drove;
the scripted expert took over when the policy drifted from it or progress stalled, and handed back; the recorder
wrote every frame with its `intervention` flag. After each round the policy was retrained on the expert-driven
frames of all rounds plus the demonstrations ({refit}), exported, and hot-loaded into the running policy node.

Every policy was evaluated on the same {cfg.eval_episodes} held-out seeds ({cfg.eval_seed}..), offline, by the
policy node's own runner. "Takeovers/ep in its round" counts the expert's takeovers in the recorded episodes
that policy drove ({cfg.episodes_per_round} per round: a hint); "held-out" runs the policy again on the
held-out seeds with the sim expert watching by the same rule (sim.evaluation.GatedPolicy: the gate and the
mux's core, without ROS), the mean with its 95% interval: how much help the policy needs. The baseline is BC
on as many expert demonstrations as it takes to reach the last round's number of expert-labelled frames
({baseline_fit}).

```
{table}
```

![success vs labels](success_vs_labels.png)

Total time: {minutes:.1f} min. Data: `data/demos`, `recording/dataset` (LeRobot v3); checkpoints `train/`;
bundles `bundles/`; node logs `logs/`.
""")
