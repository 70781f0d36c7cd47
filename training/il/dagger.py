"""DAgger (Ross et al., 2011): run the learner, let the expert label every state it visits, aggregate.

    python training/il/dagger.py --env CartPole-v1 --dagger_iterations 10 --dagger_episodes_per_iter 20 \
        --dagger_beta_schedule linear --dagger_initial_beta 1.0 --bc_epochs 20 --output_dir ./output/dagger

Per iteration i: beta_i = get_beta(i, ...); roll out the mixture (the expert's action with
probability beta_i, the learner's otherwise) while the expert labels every visited state;
D <- D u D_i; train on D (bc_epochs, continuing from the previous policy); evaluate; save.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from training.config import ILConfig
from training.demonstrations import Demonstrations
from training.envs import action_info
from training.il.behavioral_cloning import BehavioralCloning, DataLoaders, VLABehavioralCloning
from training.models.policies import ILPolicy
from training.rollouts import run_episodes

if TYPE_CHECKING:
    from training.models.vla import VLAModel


def get_beta(iteration: int, schedule: str, initial_beta: float, num_iterations: int) -> float:
    """The probability of executing the expert's action in DAgger iteration `iteration` (the spec's)."""
    if schedule == "constant":
        return initial_beta
    elif schedule == "linear":
        return max(0, initial_beta * (1 - iteration / num_iterations))
    elif schedule == "exponential":
        return initial_beta * (0.9**iteration)
    raise ValueError(f"unknown beta schedule {schedule!r}: constant, linear or exponential")


class DAggerLoop:
    """DAgger's iterations, written once for every policy: roll out the mixture (the expert's action with
    probability beta), the expert labels every visited state, D <- D u D_i, fit on D (bc_epochs, continuing
    from the previous policy), record. A subclass provides the policy side: `collect` (the rollouts and
    their labels, into its aggregate) and `fit_data` (the aggregate as its BC trainer takes it)."""

    config: ILConfig
    bc: BehavioralCloning
    expert_labels: int
    history: list[dict[str, Any]]
    show_progress = True

    @property
    def policy(self):
        return self.bc.policy

    def collect(self, iteration: int, beta: float, seed: int) -> dict[str, float]:
        """Roll out dagger_episodes_per_iter episodes from seed on, add the labelled states to the aggregate
        (counting expert_labels); the rollouts' mean_reward and/or success_rate."""
        raise NotImplementedError

    def fit_data(self, iteration: int) -> Any:
        """The aggregate as the BC trainer fits it in `iteration`."""
        raise NotImplementedError

    def dataset_size(self) -> int:
        raise NotImplementedError

    def iterate(self, on_iteration: Callable[[int, Any, int], None] | None = None) -> list[dict[str, Any]]:
        """dagger_iterations rounds; `on_iteration(i, policy, labels)` after every fit."""
        from training.progress import trange

        c = self.config
        for i in trange(c.dagger_iterations, desc="DAgger iterations", disable=not self.show_progress):
            beta = get_beta(i, c.dagger_beta_schedule, c.dagger_initial_beta, c.dagger_iterations)
            stats = self.collect(i, beta, c.seed + 1000 * (i + 1))
            result = self.bc.fit(self.fit_data(i), c.bc_epochs, extra_metrics={
                "dagger/beta": beta, "dagger/iteration": i, "dagger/expert_labels": self.expert_labels,
                "dagger/dataset_size": self.dataset_size(),
                **{f"dagger/rollout_{k}": stats[k] for k in ("mean_reward", "success_rate") if k in stats},
            })
            self.history.append(result)
            if on_iteration is not None:
                on_iteration(i, self.policy, self.expert_labels)
        return self.history


class DAgger(DAggerLoop):
    """DAgger for an ILPolicy on a gymnasium env, with an expert that labels any state."""

    def __init__(self, env=None, expert_policy=None, config: ILConfig | None = None, policy: ILPolicy | None = None,
                 use_wandb: bool | None = None, env_name: str | None = None,
                 provenance: dict[str, Any] | None = None) -> None:
        if expert_policy is None:
            raise ValueError("DAgger needs an expert_policy to label the states the learner visits")
        self.config = config or ILConfig.dagger()
        self.expert = expert_policy
        self.bc = BehavioralCloning(env, self.config, policy, use_wandb, env_name, run_name="dagger",
                                    provenance=provenance)
        self.env = self.bc.env
        discrete, _ = action_info(self.env)
        obs_dim = self.env.observation_space.shape[0]
        action_shape = () if discrete else self.env.action_space.shape
        self.data = Demonstrations.empty(obs_dim, action_shape, discrete)
        self.expert_labels = 0
        self.history: list[dict[str, Any]] = []

    def train(self, initial_demonstrations: Demonstrations | None = None,
              on_iteration: Callable[[int, ILPolicy, int], None] | None = None) -> dict[str, Any]:
        """D0 (given demonstrations and/or `dagger_initial_episodes` expert episodes) is fitted before
        the learner's first rollout; then `dagger_iterations` rounds. `on_iteration(i, policy, labels)`
        is called after every fit (i = -1 for the D0 fit), e.g. to snapshot the policy."""
        c = self.config
        if initial_demonstrations is not None:
            self.data = self.data.aggregate(initial_demonstrations)
        if c.dagger_initial_episodes:
            d0, _ = run_episodes(self.env, c.dagger_initial_episodes, self.expert, seed=c.seed, expert=self.expert,
                                 beta=1.0, progress="D0 expert demos")
            self.data = self.data.aggregate(d0)
            self.expert_labels += len(d0)
        if len(self.data):
            # the learner that rolls out in iteration 0 is BC on D0, not an untrained network
            self.bc.fit(self.data, c.bc_epochs, extra_metrics={"dagger/expert_labels": self.expert_labels,
                                                                "dagger/dataset_size": len(self.data)})
            if on_iteration is not None:
                on_iteration(-1, self.policy, self.expert_labels)
        try:
            self.iterate(on_iteration)
        finally:
            self.bc.close()
        return {"history": self.history, "final": self.history[-1] if self.history else {}}

    def collect(self, iteration: int, beta: float, seed: int) -> dict[str, float]:
        actor = self.bc.actor()
        new, stats = run_episodes(self.env, self.config.dagger_episodes_per_iter, actor, seed=seed,
                                  expert=self.expert, beta=beta, reset=actor.reset,
                                  progress=f"rollouts i={iteration}", chunk_segments=self.policy.chunk_size > 1)
        self.data = self.data.aggregate(new)
        self.expert_labels += len(new)
        return stats

    def fit_data(self, iteration: int) -> Demonstrations:
        return self.data

    def dataset_size(self) -> int:
        return len(self.data)


class VLADAgger(DAggerLoop):
    """DAgger with the VLA: roll out in the sim (the expert's action with probability beta), let the ALOHA
    scripted expert label every visited state, aggregate with the dataset, refit (bc_epochs)."""

    def __init__(
        self,
        model: VLAModel,
        config: ILConfig | None = None,
        task: str = "transfer_cube",
        dataset: torch.utils.data.Dataset | None = None,
        val_dataset=None,
        expert=None,
        use_wandb: bool | None = None,
        dataset_name: str | None = None,
        episode_length: int = 400,
        provenance: dict[str, Any] | None = None,
    ) -> None:
        from sim.experts import make_expert
        from training.il.vla_rollouts import RolloutDataset

        self.config = config or ILConfig.dagger()
        self.bc = VLABehavioralCloning(
            model,
            self.config,
            use_wandb,
            dataset_name,
            eval_task=task,
            run_name="vla_dagger",
            eval_episode_length=episode_length,
            provenance=provenance,
        )
        self.task, self.dataset, self.val_dataset = task, dataset, val_dataset
        self.expert = expert or make_expert(task)
        self.episode_length = episode_length
        self.show_progress = self.bc.is_main
        # the rollouts batch with the dataset's items: with its object poses when it has them (sim recordings)
        with_env_state = bool(getattr(dataset, "env_state_dim", 0))
        self.rollouts = RolloutDataset(model.cameras, model.chunk_size, env_state=with_env_state)
        self.expert_labels = 0
        self.history: list[dict[str, Any]] = []

    def train(self) -> dict[str, Any]:
        from sim.aloha.env import AlohaEnv
        from training.datasets.lerobot_dataset import create_lerobot_dataloader

        c, model = self.config, self.policy
        self._env = AlohaEnv(self.task, cameras=model.cameras, image_size=model.image_size, clamp_actions=True,
                             episode_length=self.episode_length)
        self._rng = np.random.default_rng(c.seed + self.bc.rank)
        self._val = create_lerobot_dataloader(self.val_dataset, c.batch_size, shuffle=False) \
            if self.val_dataset else None
        try:
            self.iterate()
        finally:
            self._env.close()
            self.bc.close()
        return {"history": self.history, "final": self.history[-1] if self.history else {}}

    def collect(self, iteration: int, beta: float, seed: int) -> dict[str, float]:
        from training.il.vla_rollouts import VLASimPolicy, collect_labelled_episodes

        c = self.config
        policy = VLASimPolicy(self.policy, temporal_ensembling=c.temporal_aggregation, k=c.temporal_aggregation_k)
        seed += 100 * self.bc.rank  # each rank visits its own episodes
        stats = collect_labelled_episodes(self._env, policy, self.expert, c.dagger_episodes_per_iter, beta, seed,
                                          self._rng, self.rollouts)
        self.expert_labels = len(self.rollouts)
        return stats

    def fit_data(self, iteration: int) -> DataLoaders:
        from training.datasets.lerobot_dataset import create_lerobot_dataloader

        data = torch.utils.data.ConcatDataset(self._parts())
        return DataLoaders(create_lerobot_dataloader(data, self.config.batch_size, seed=self.config.seed + iteration),
                           self._val)

    def dataset_size(self) -> int:
        return sum(len(d) for d in self._parts())

    def _parts(self) -> list:
        return [d for d in (self.dataset, self.rollouts) if d is not None and len(d)]


if __name__ == "__main__":  # `python training/il/dagger.py ...`: the CLI (which imports this module) runs it
    from training.cli import run_il_cli

    raise SystemExit(run_il_cli("dagger"))
