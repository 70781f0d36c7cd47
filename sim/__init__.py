"""The simulated ALOHA: MuJoCo tasks with their own render path, closed-loop scripted experts,
evaluation and recording. `import sim` registers the gymnasium ids:

    vla_il/AlohaTransferCube-v0, vla_il/AlohaInsertion-v0
"""

from sim.aloha.env import TASKS, AlohaEnv, register_envs

register_envs()

__all__ = ["TASKS", "AlohaEnv", "register_envs"]
