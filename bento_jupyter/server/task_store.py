"""Tasks on disk: one SQLite file per service, so results outlive a hot swap and a server restart.

Every change is one SQL statement in autocommit mode, so several ``bento-jupyter serve`` workers can
share a file: the oldest pending task goes to whichever worker's claim runs first, and a claim counts the
tasks every worker runs, so an API's ``max_concurrency`` bounds them all together. A finished task is kept
``retention_s`` seconds: from then on no read sees it, and ``purge`` deletes it.
"""

from __future__ import annotations

import contextlib
import math
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bento_jupyter.processes import process_alive
from bento_jupyter.service.task_status import TaskStatus

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    task_id TEXT PRIMARY KEY,
    api TEXT NOT NULL,
    input BLOB NOT NULL,
    status TEXT NOT NULL,
    result BLOB,
    media_type TEXT,
    http_status INTEGER,
    owner TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    executed_at REAL,
    completed_at REAL
);
CREATE INDEX IF NOT EXISTS tasks_by_status ON tasks (status, api, created_at);
"""
_COLUMNS = (
    "task_id, api, input, status, result, media_type, http_status, owner, cancel_requested,"
    " created_at, executed_at, completed_at"
)


def _iso(seconds: float | None) -> str | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, timezone.utc).isoformat()


@dataclass(frozen=True)
class TaskRecord:
    """One task row: its request body, and once finished its answer (body, media type, HTTP status)."""

    task_id: str
    api: str
    input: bytes
    status: TaskStatus
    result: bytes | None
    media_type: str | None
    http_status: int | None
    owner: str | None  # 'pid:boot-id' of the process running it
    cancel_requested: bool
    created_at: float
    executed_at: float | None
    completed_at: float | None

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> TaskRecord:
        values = list(row)
        values[3] = TaskStatus(values[3])
        values[8] = bool(values[8])
        return cls(*values)

    def status_json(self) -> dict[str, Any]:
        """The ``/status`` answer, in BentoML's shape (times as ISO 8601 in UTC)."""
        return {
            "task_id": self.task_id,
            "status": self.status.value,
            "created_at": _iso(self.created_at),
            "executed_at": _iso(self.executed_at),
            "completed_at": _iso(self.completed_at),
            "cancel_requested": self.cancel_requested,
        }


_BOOT = uuid.uuid4().hex  # tells this process from an earlier one that had the same pid (a container's pid 1)


def _this_process() -> str:
    return f"{os.getpid()}:{_BOOT}"


def _owner_alive(owner: str | None) -> bool:
    if owner is None:
        return False
    if owner == _this_process():
        return True
    pid = int(owner.split(":", 1)[0])
    return pid != os.getpid() and process_alive(pid)


class TaskStore:
    """The tasks of one service in ``path`` (created on first use), finished ones kept ``retention_s`` seconds
    (None: for ever); every method is thread-safe."""

    def __init__(self, path: Path, retention_s: float | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.retention_s = retention_s
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # with WAL: survives a crashed process, fsyncs less
            self._db.execute("PRAGMA busy_timeout=30000")
            self._db.executescript(_SCHEMA)

    def _one(self, sql: str, args: tuple[Any, ...]) -> TaskRecord | None:
        with self._lock:
            row = self._db.execute(sql, args).fetchone()
        return None if row is None else TaskRecord.from_row(row)

    def add(self, api: str, body: bytes) -> TaskRecord:
        """A new pending task of ``api`` with the request ``body``."""
        task_id = uuid.uuid4().hex
        record = self._one(
            f"INSERT INTO tasks (task_id, api, input, status, created_at) VALUES (?, ?, ?, ?, ?) RETURNING {_COLUMNS}",
            (task_id, api, body, TaskStatus.PENDING.value, time.time()),
        )
        assert record is not None
        return record

    def _expired_before(self) -> float:
        """Tasks that finished before this time (seconds since the epoch) are past their retention."""
        return -math.inf if self.retention_s is None else time.time() - self.retention_s

    def get(self, task_id: str) -> TaskRecord | None:
        """The task, or None when there is none or it finished longer than ``retention_s`` ago."""
        return self._one(
            f"SELECT {_COLUMNS} FROM tasks WHERE task_id = ? AND (completed_at IS NULL OR completed_at >= ?)",
            (task_id, self._expired_before()),
        )

    def pending(self, api: str) -> int:
        """How many tasks of ``api`` wait to run."""
        with self._lock:
            (count,) = self._db.execute(
                "SELECT count(*) FROM tasks WHERE status = ? AND api = ?", (TaskStatus.PENDING.value, api)
            ).fetchone()
        return int(count)

    def claim(self, limits: Mapping[str, int]) -> TaskRecord | None:
        """Mark the oldest pending task of an API in ``limits`` in progress, owned by this process, and return it;
        None when none waits or each API that has one already runs its limit of tasks (in any process)."""
        if not limits:
            return None
        apis = list(limits)
        marks = ", ".join("?" * len(apis))
        bound = " ".join("WHEN ? THEN ?" for _ in apis)
        return self._one(
            f"UPDATE tasks SET status = ?, executed_at = ?, owner = ? WHERE task_id = ("
            f" SELECT task_id FROM tasks AS waiting WHERE status = ? AND api IN ({marks})"
            f" AND (SELECT count(*) FROM tasks WHERE status = ? AND api = waiting.api) < CASE api {bound} END"
            f" ORDER BY created_at LIMIT 1"
            f") AND status = ? RETURNING {_COLUMNS}",
            (
                TaskStatus.IN_PROGRESS.value,
                time.time(),
                _this_process(),
                TaskStatus.PENDING.value,
                *apis,
                TaskStatus.IN_PROGRESS.value,
                *(value for api in apis for value in (api, limits[api])),
                TaskStatus.PENDING.value,
            ),
        )

    def finish(self, task_id: str, status: TaskStatus, body: bytes, media_type: str, http_status: int) -> None:
        """Store a running task's answer; a task whose cancellation was asked for ends canceled whatever it returned,
        and a task already finished (failed by ``interrupt``) keeps its end: a late answer changes nothing."""
        with self._lock:
            self._db.execute(
                "UPDATE tasks SET status = CASE WHEN cancel_requested THEN ? ELSE ? END,"
                " result = ?, media_type = ?, http_status = ?, completed_at = ? WHERE task_id = ? AND status = ?",
                (
                    TaskStatus.CANCELED.value,
                    status.value,
                    body,
                    media_type,
                    http_status,
                    time.time(),
                    task_id,
                    TaskStatus.IN_PROGRESS.value,
                ),
            )

    def interrupt(self, task_ids: list[str], error_body: bytes) -> None:
        """Fail running tasks whose server stops (500, ``error_body``) and flag their cancellation, so a handler
        polling ``cancel_requested()`` returns instead of computing on beside the tasks run after it."""
        if not task_ids:
            return
        marks = ", ".join("?" * len(task_ids))
        with self._lock:
            self._db.execute(
                "UPDATE tasks SET status = ?, cancel_requested = 1, result = ?, media_type = ?, http_status = 500,"
                f" completed_at = ? WHERE status = ? AND task_id IN ({marks})",
                (
                    TaskStatus.FAILED.value,
                    error_body,
                    "application/json",
                    time.time(),
                    TaskStatus.IN_PROGRESS.value,
                    *task_ids,
                ),
            )

    def cancel(self, task_id: str) -> TaskRecord | None:
        """Cancel a pending task at once; flag a running one (its handler may poll ``cancel_requested()``).

        One statement: the record returned is the task as this cancellation left it, before its handler can
        see the flag and finish. None when there is no such task or it had already finished."""
        pending = TaskStatus.PENDING.value
        return self._one(
            "UPDATE tasks SET cancel_requested = 1,"
            " status = CASE WHEN status = ? THEN ? ELSE status END,"
            " completed_at = CASE WHEN status = ? THEN ? ELSE completed_at END"
            f" WHERE task_id = ? AND status IN (?, ?) RETURNING {_COLUMNS}",
            (pending, TaskStatus.CANCELED.value, pending, time.time(), task_id, pending, TaskStatus.IN_PROGRESS.value),
        )

    def cancel_requested(self, task_id: str) -> bool:
        record = self.get(task_id)
        return record is not None and record.cancel_requested

    def recover(self, error_body: bytes) -> int:
        """Fail the tasks left in progress by processes that no longer run (a stopped server); how many."""
        with self._lock:
            rows = self._db.execute(
                "SELECT task_id, owner FROM tasks WHERE status = ?", (TaskStatus.IN_PROGRESS.value,)
            ).fetchall()
        orphans = [task_id for task_id, owner in rows if not _owner_alive(owner)]
        for task_id in orphans:
            self.finish(task_id, TaskStatus.FAILED, error_body, "application/json", 500)
        return len(orphans)

    def purge(self) -> int:
        """Delete the tasks finished longer than ``retention_s`` ago; how many."""
        with self._lock:
            cursor = self._db.execute(
                "DELETE FROM tasks WHERE completed_at IS NOT NULL AND completed_at < ?", (self._expired_before(),)
            )
        return cursor.rowcount

    def recent(self, limit: int = 100) -> list[TaskRecord]:
        """The newest tasks first, for a task list (none past its retention)."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM tasks WHERE completed_at IS NULL OR completed_at >= ?"
                " ORDER BY created_at DESC LIMIT ?",
                (self._expired_before(), limit),
            ).fetchall()
        return [TaskRecord.from_row(row) for row in rows]

    def close(self) -> None:
        with self._lock, contextlib.suppress(sqlite3.Error):
            self._db.close()
