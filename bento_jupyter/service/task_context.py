"""What a task's handler may ask while it runs: has someone asked to cancel it?"""

from __future__ import annotations

import contextvars
from typing import Protocol


class CancelFlags(Protocol):
    def cancel_requested(self, task_id: str) -> bool: ...


current_task: contextvars.ContextVar[tuple[CancelFlags, str] | None] = contextvars.ContextVar(
    "bento_jupyter_task", default=None
)


def cancel_requested() -> bool:
    """True once someone asked to cancel the task this handler runs (``PUT {route}/cancel``).

    A long task polls it and returns early; it is then stored as ``canceled``. Always False
    outside a task (a direct call, a plain request, the notebook).
    """
    current = current_task.get()
    return current is not None and current[0].cancel_requested(current[1])
