"""The status names of a task API's jobs."""

from __future__ import annotations

import enum


class TaskStatus(enum.Enum):
    """BentoML's task status names (``bentoml``'s ``ResultStatus``), which its client parses."""

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def finished(self) -> bool:
        return self in (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELED)
