"""A batchable task API's handler sees ``cancel_requested()`` turn true once every task of its batch is canceled
(``PUT /cancel``, a stopped service); while one of them is still wanted, the batch runs on and answers it
(README: Tasks)."""

from __future__ import annotations

import threading
import time

import numpy as np
import requests

from bento_jupyter import api, cancel_requested
from tests.server.test_tasks import wait_for


class Batches:
    """A batchable task handler that runs until released, or stops once its batch is asked to."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls: list[int] = []
        self.stopped: list[int] = []

    def handler(self):
        @api(task=True, batchable=True, max_batch_size=8, max_concurrency=1)
        def rows(values: np.ndarray) -> np.ndarray:
            self.calls.append(len(values))
            while not self.release.wait(0.01):
                if cancel_requested():
                    self.stopped.append(len(values))
                    return values
            return values * 2

        return rows


def submit(url: str, value: float) -> str:
    return requests.post(f"{url}/submit", json={"values": [[value]]}, timeout=5).json()["task_id"]


def cancel(url: str, task_id: str) -> None:
    assert requests.put(f"{url}/cancel", params={"task_id": task_id}, timeout=5).status_code == 200


def until(condition, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


def test_a_batch_stops_once_every_task_of_it_is_canceled_and_answers_the_others_until_then(serve, tmp_path):
    batches = Batches()
    url = serve("batched", batches.handler(), task_home=tmp_path).url + "/rows"
    alone = submit(url, 1)
    wait_for(url, alone, "in_progress")
    first, second = submit(url, 2), submit(url, 3)
    assert until(lambda: batches.calls == [1])
    cancel(url, alone)  # the only task of its batch: the handler is asked to stop
    assert until(lambda: batches.stopped == [1]), batches.stopped
    wait_for(url, alone, "canceled")
    assert until(lambda: batches.calls == [1, 2]), batches.calls  # the two queued tasks share the next batch
    cancel(url, first)
    time.sleep(0.3)  # many polls of the handler: the batch still answers the task nobody canceled
    assert batches.stopped == [1]
    batches.release.set()
    assert wait_for(url, second, "completed")
    assert requests.get(f"{url}/get", params={"task_id": second}, timeout=5).json() == [[6.0]]
    wait_for(url, first, "canceled")


def test_a_stopped_service_asks_a_running_batch_of_tasks_to_stop(serve, tmp_path):
    batches = Batches()
    server = serve("stopping", batches.handler(), task_home=tmp_path)
    url = server.url + "/rows"
    wait_for(url, submit(url, 1), "in_progress")
    server.stop()
    assert until(lambda: batches.stopped == [1]), "the batch's handler never saw cancel_requested() turn true"
