"""What a task's handler may ask while it runs: has someone asked to cancel it?"""

from __future__ import annotations

import contextvars
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


class CancelFlags(Protocol):
    def cancel_requested(self, task_id: str) -> bool: ...


TaskRef = tuple[CancelFlags, str]  # where a task's cancellation is flagged, and its id

current_task: contextvars.ContextVar[TaskRef | None] = contextvars.ContextVar("bento_jupyter_task", default=None)


def cancel_requested() -> bool:
    """True once someone asked to cancel the task this handler runs (``PUT {route}/cancel``).

    A long task polls it and returns early; it is then stored as ``canceled``. Always False
    outside a task (a direct call, a plain request, the notebook).
    """
    current = current_task.get()
    return current is not None and current[0].cancel_requested(current[1])


@dataclass(frozen=True)
class EveryTask:
    """The tasks one batch answers: its handler is asked to stop only once every one of them is (stopping for one
    would lose the others' answers)."""

    tasks: tuple[TaskRef, ...]

    def cancel_requested(self, task_id: str = "") -> bool:
        return all(flags.cancel_requested(each) for flags, each in self.tasks)


def batch_of(tasks: Sequence[TaskRef | None]) -> TaskRef | None:
    """What ``cancel_requested()`` asks in a batch's handler: every task of it, or nothing (always False) when a
    plain request, which nobody can cancel, is among them."""
    if not tasks or any(task is None for task in tasks):
        return None
    return EveryTask(tuple(task for task in tasks if task is not None)), ""
