"""Closed-loop scripted experts: functions of the measured state that can label any state."""

from __future__ import annotations

from sim.experts.base import ScriptedExpert


def make_expert(task: str) -> ScriptedExpert:
    """The scripted expert of a task (transfer_cube, insertion)."""
    if task == "transfer_cube":
        from sim.experts.transfer_cube import TransferCubeExpert

        return TransferCubeExpert()
    if task == "insertion":
        from sim.experts.insertion import InsertionExpert

        return InsertionExpert()
    from sim.aloha.tasks import get_task

    get_task(task)  # raises with the list of valid tasks
    raise ValueError(f"no scripted expert for task {task!r}")
