"""A task runner's many workers (a batchable API runs max_concurrency x max_batch_size tasks at once) share one
poll of the store while idle, and still run every stored task, however many are stored at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from bento_jupyter.server.task_store import TaskRecord, TaskStore
from bento_jupyter.server.tasks import Answer, TaskAPI, TaskRunner
from bento_jupyter.service.task_status import TaskStatus

WORKERS = 64


class CountingStore(TaskStore):
    """A real task store that counts how often workers ask it for a task."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.claims = 0

    def claim(self, limits: Mapping[str, int]) -> TaskRecord | None:
        self.claims += 1
        return super().claim(limits)


def test_idle_workers_poll_the_store_once_per_poll_not_once_each(tmp_path):
    store = CountingStore(tmp_path / "tasks.db")
    runner = TaskRunner(store, lambda record: (200, b"{}", "application/json"))
    runner.serve([TaskAPI("score", "/score", max_concurrency=WORKERS)])
    try:
        time.sleep(0.3)  # every worker has started and looked once
        before = store.claims
        time.sleep(2.0)
        assert store.claims - before <= 8  # one poller, every 0.5 s; 64 pollers made about 256
    finally:
        runner.close()


@settings(max_examples=5, deadline=None)
@given(tasks=st.integers(min_value=1, max_value=150), limit=st.sampled_from([1, 3, WORKERS]))
def test_every_stored_task_runs_and_no_more_than_the_limit_at_once(tmp_path_factory, tasks, limit):
    store = TaskStore(tmp_path_factory.mktemp("tasks") / "tasks.db")
    lock, running, peak, done = threading.Lock(), [0], [0], threading.Semaphore(0)

    def execute(record: TaskRecord) -> Answer:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.002)
        with lock:
            running[0] -= 1
        done.release()
        return 200, b"{}", "application/json"

    runner = TaskRunner(store, execute)
    api = TaskAPI("score", "/score", max_queue_size=1000, max_concurrency=limit)
    runner.serve([api, TaskAPI("other", "/other", max_concurrency=WORKERS - limit)])
    try:
        ids = [runner.submit(api, b"{}").task_id for _ in range(tasks)]
        for _ in ids:
            assert done.acquire(timeout=30), "a stored task was never run"
        assert peak[0] <= limit
        for task_id in ids:
            deadline = time.monotonic() + 10
            while (record := store.get(task_id)) is not None and record.status is not TaskStatus.COMPLETED:
                assert time.monotonic() < deadline, record.status
                time.sleep(0.01)
    finally:
        runner.close()
