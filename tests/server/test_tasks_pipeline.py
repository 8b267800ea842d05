"""A task runs through its API's one request pipeline (``Endpoint.call``), as a request to its route does: the same
decode, batch queue, threads or loop, ``max_concurrency`` and encoding. Real uvicorn on 127.0.0.1, tasks in SQLite."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bento_jupyter import api
from tests.server.test_request_arguments import bodies
from tests.server.test_tasks import wait_for

MODEL_ROWS = 2  # the model below takes at most this many rows per call, as a model compiled for a batch size does


@api(task=True, batchable=True, max_batch_size=MODEL_ROWS)
def halve(x: np.ndarray) -> np.ndarray:
    if len(x) > MODEL_ROWS:
        raise ValueError(f"this model takes at most {MODEL_ROWS} rows, got {len(x)}")
    return (x / 2).astype(np.float32)


@api(task=True)
def tripled(x: np.ndarray) -> np.ndarray:
    return x * 3


loops: list[asyncio.AbstractEventLoop] = []


@api(task=True)
async def which_loop(n: int) -> int:
    loops.append(asyncio.get_running_loop())
    await asyncio.sleep(0)
    return n


@pytest.fixture
def url(serve, tmp_path):
    return serve("pipeline", halve, tripled, which_loop, task_home=tmp_path).url


def run_task(url: str, body: dict) -> requests.Response:
    task_id = requests.post(f"{url}/submit", json=body, timeout=5).json()["task_id"]
    wait_for(url, task_id, "completed")
    return requests.get(f"{url}/get", params={"task_id": task_id}, timeout=5)


ROWS = st.lists(
    st.lists(st.floats(-1e6, 1e6, allow_nan=False, width=32), min_size=3, max_size=3),
    min_size=1,
    max_size=2 * MODEL_ROWS + 1,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=ROWS)
def test_a_batchable_task_is_batched_by_max_batch_size_and_answers_what_its_route_answers(url, rows):
    """Its batch queue splits a task's rows into calls of at most ``max_batch_size``, as for its route (the handler
    was called with every row at once), and the stored result is the route's JSON, numpy float32 included."""
    route = requests.post(f"{url}/halve", json={"x": rows}, timeout=10)
    assert route.status_code == 200, route.text
    task = run_task(f"{url}/halve", {"x": rows})
    assert task.status_code == 200, task.text
    assert task.content == route.content
    assert task.headers["content-type"] == route.headers["content-type"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies())
def test_a_body_is_refused_at_submit_as_its_route_refuses_it_and_else_answered_alike(url, body):
    """The route's 400 (naming the field) is /submit's, byte for byte; a body the route answers, the task answers
    with the same JSON."""
    headers = {"content-type": "application/json"}
    route = requests.post(f"{url}/tripled", data=body, headers=headers, timeout=10)
    submitted = requests.post(f"{url}/tripled/submit", data=body, headers=headers, timeout=10)
    if route.status_code != 200:
        assert (submitted.status_code, submitted.content) == (route.status_code, route.content)
        return
    assert submitted.status_code == 200, submitted.text
    task_id = submitted.json()["task_id"]
    wait_for(f"{url}/tripled", task_id, "completed")
    task = requests.get(f"{url}/tripled/get", params={"task_id": task_id}, timeout=5)
    assert task.content == route.content


def test_an_async_task_runs_on_its_apis_own_loop_as_its_route_does(url):
    """One loop for every call of an async API, its tasks' included, so state bound to it at the first call (a client
    session, a lock) serves the later ones (each task ran on a loop of its own)."""
    loops.clear()
    assert requests.post(f"{url}/which_loop", json={"n": 1}, timeout=5).json() == 1
    assert run_task(f"{url}/which_loop", {"n": 2}).json() == 2
    assert run_task(f"{url}/which_loop", {"n": 3}).json() == 3
    assert len(loops) == 3 and len(set(map(id, loops))) == 1


def test_max_concurrency_bounds_a_tasks_and_its_routes_calls_together(serve, tmp_path):
    """``max_concurrency=1``: a request to the route waits while a task of the same API runs (both ran at once)."""
    active, peak, lock = [0], [0], threading.Lock()
    second_entered = threading.Event()

    @api(task=True, max_concurrency=1)
    def one_at_a_time(n: int) -> int:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
            if active[0] > 1:
                second_entered.set()
        try:
            if n == 0:  # the task holds its slot until a second call enters beside it, or for a second
                second_entered.wait(1.0)
            return n
        finally:
            with lock:
                active[0] -= 1

    url = serve("bounded", one_at_a_time, task_home=tmp_path).url + "/one_at_a_time"
    task_id = requests.post(f"{url}/submit", json={"n": 0}, timeout=5).json()["task_id"]
    wait_for(url, task_id, "in_progress")
    assert requests.post(url, json={"n": 1}, timeout=10).json() == 1
    wait_for(url, task_id, "completed")
    assert peak[0] == 1


def test_a_task_running_when_its_service_stops_ends_failed_ready_for_retry(tmp_path):
    """As a request cut by a stop is answered 'stopped', the task ends ``failed`` saying the server stopped (it
    stayed ``in_progress`` while its handler ran on in the process)."""
    from bento_jupyter.server.app import ServiceApp
    from bento_jupyter.server.runner import ThreadedServer
    from bento_jupyter.server.task_store import TaskStore
    from bento_jupyter.server.tasks import task_store_path
    from bento_jupyter.service.definition import ServiceDefinition
    from bento_jupyter.service.task_status import TaskStatus

    release = threading.Event()

    @api(task=True)
    def held(n: int) -> int:
        release.wait(30)
        return n

    app = ServiceApp(ServiceDefinition.from_functions("stopping", [held]), task_home=tmp_path)
    server = ThreadedServer(app, "127.0.0.1", None)
    server.start()
    try:
        url = f"{server.url}/held"
        task_id = requests.post(f"{url}/submit", json={"n": 1}, timeout=5).json()["task_id"]
        wait_for(url, task_id, "in_progress")
    finally:
        server.stop()
        app.close()
    store = TaskStore(task_store_path(tmp_path, "stopping"))
    try:
        deadline = time.monotonic() + 5
        while not (record := store.get(task_id)).status.finished and time.monotonic() < deadline:
            time.sleep(0.02)
        assert record.status is TaskStatus.FAILED
        assert record.http_status == 500 and b"server stopped" in (record.result or b"")
    finally:
        release.set()
        store.close()


@pytest.mark.parametrize("noticed_by", ["the task's worker", "the app's close"])
def test_a_stopped_service_asks_its_running_tasks_to_stop_and_keeps_them_failed(tmp_path, noticed_by):
    """A stop flags the cancellation of the tasks it cuts: a handler polling ``cancel_requested()`` returns, so
    it does not compute on beside the task the re-run cell starts next (``max_concurrency`` exceeded), and the
    answer it returns late never replaces the task's ``failed``; whether the task's worker sees the server's loop
    end first or the app's close (``%bento stop`` stops the server, then closes the app) reaches it first."""
    from bento_jupyter import cancel_requested
    from bento_jupyter.server.app import ServiceApp
    from bento_jupyter.server.runner import ThreadedServer
    from bento_jupyter.server.task_store import TaskStore
    from bento_jupyter.server.tasks import task_store_path
    from bento_jupyter.service.definition import ServiceDefinition
    from bento_jupyter.service.task_status import TaskStatus

    started, noticed, returned = threading.Event(), threading.Event(), threading.Event()

    @api(task=True)
    def polite(n: int) -> int:
        started.set()
        deadline = time.monotonic() + 30
        while not cancel_requested() and time.monotonic() < deadline:
            time.sleep(0.01)
        if cancel_requested():
            noticed.set()
        try:
            return n
        finally:
            returned.set()

    app = ServiceApp(ServiceDefinition.from_functions("politely", [polite]), task_home=tmp_path)
    server = ThreadedServer(app, "127.0.0.1", None)
    server.start()
    url = f"{server.url}/polite"
    try:
        task_id = requests.post(f"{url}/submit", json={"n": 1}, timeout=5).json()["task_id"]
        assert started.wait(10)
    finally:
        if noticed_by == "the app's close":
            app.close()
        server.stop()
    store = TaskStore(task_store_path(tmp_path, "politely"))
    wait_for_status = time.monotonic() + 10
    while not store.get(task_id).status.finished and time.monotonic() < wait_for_status:
        time.sleep(0.02)
    app.close()
    assert noticed.wait(10), "the handler never saw cancel_requested() turn true"
    assert returned.wait(10)
    try:
        for _ in range(20):  # the worker that ran it has had every chance to store the late answer
            record = store.get(task_id)
            assert record.status is TaskStatus.FAILED
            assert record.http_status == 500 and b"server stopped" in (record.result or b"")
            time.sleep(0.05)
    finally:
        store.close()


def test_queued_tasks_of_a_batchable_api_share_its_batches_within_max_batch_size(serve, tmp_path):
    """As BentoML runs a batchable task through its batching, tasks waiting together are merged into batches of
    at most ``max_batch_size``, ``max_concurrency`` batches at a time (not one handler call per task)."""
    batches: list[int] = []
    running, peak = [0], [0]
    count = threading.Lock()

    @api(task=True, batchable=True, max_batch_size=3, max_concurrency=1)
    def slow_double(x: np.ndarray) -> np.ndarray:
        with count:
            batches.append(len(x))
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.2)
        with count:
            running[0] -= 1
        return x * 2

    url = serve("merging", slow_double, task_home=tmp_path).url + "/slow_double"
    ids = [requests.post(f"{url}/submit", json={"x": [float(i)]}, timeout=5).json()["task_id"] for i in range(7)]
    for i, task_id in enumerate(ids):
        wait_for(url, task_id, "completed")
        assert requests.get(f"{url}/get", params={"task_id": task_id}, timeout=5).json() == [2.0 * i]
    assert sum(batches) == 7 and max(batches) <= 3 and peak[0] == 1
    assert len(batches) < 7, batches
