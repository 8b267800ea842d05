"""@api(task=True): BentoML's task routes over a real uvicorn on 127.0.0.1, results in SQLite on disk."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import requests

from bento_jupyter import api, cancel_requested
from bento_jupyter.server.app import ServiceApp
from bento_jupyter.server.runner import ThreadedServer
from bento_jupyter.server.tasks import bento_task_scope, kernel_task_scope
from bento_jupyter.service.definition import ServiceDefinition


def wait_for(url: str, task_id: str, status: str, timeout: float = 10) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        answer = requests.get(f"{url}/status", params={"task_id": task_id}, timeout=5).json()
        if answer["status"] == status or time.monotonic() > deadline:
            assert answer["status"] == status, answer
            return answer
        time.sleep(0.02)


@api(task=True)
def score_file(rows: list[list[float]]) -> dict:
    return {"mean": float(np.mean(rows)), "n": len(rows)}


@api(task=True)
async def shout(text: str) -> str:
    await asyncio.sleep(0.01)
    return text.upper()


@api(task=True)
def explode(n: int) -> int:
    raise RuntimeError(f"cannot score {n}")


class Gate:
    """A task handler that blocks until released, or until its cancellation is asked for."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started: list[int] = []
        self.saw_cancel = threading.Event()

    def handler(self, max_queue_size: int = 100):
        @api(task=True, max_queue_size=max_queue_size)
        def gated(n: int) -> int:
            self.started.append(n)
            while not self.release.wait(0.02):
                if cancel_requested():
                    self.saw_cancel.set()
                    return -1
            return n

        return gated


@pytest.fixture
def url(serve, tmp_path):
    return serve("jobs", score_file, shout, explode, task_home=tmp_path).url


def test_submit_answers_at_once_and_the_result_is_fetched_later(url):
    submitted = requests.post(f"{url}/score_file/submit", json={"rows": [[1, 2], [3, 4]]}, timeout=5)
    assert submitted.status_code == 200
    task = submitted.json()
    assert task["status"] in ("pending", "in_progress", "completed")
    done = wait_for(f"{url}/score_file", task["task_id"], "completed")
    assert done["created_at"] <= done["executed_at"] <= done["completed_at"]
    got = requests.get(f"{url}/score_file/get", params={"task_id": task["task_id"]}, timeout=5)
    assert got.status_code == 200 and got.json() == {"mean": 2.5, "n": 2}
    # The API's own route still answers synchronously, as BentoML's does.
    assert requests.post(f"{url}/score_file", json={"rows": [[2]]}, timeout=5).json() == {"mean": 2.0, "n": 1}


def test_async_task_with_text_output(url):
    task_id = requests.post(f"{url}/shout/submit", json={"text": "hi"}, timeout=5).json()["task_id"]
    wait_for(f"{url}/shout", task_id, "completed")
    got = requests.get(f"{url}/shout/get", params={"task_id": task_id}, timeout=5)
    assert got.text == "HI" and got.headers["content-type"].startswith("text/plain")


def test_failed_task_keeps_its_error_and_can_be_retried(url):
    task_id = requests.post(f"{url}/explode/submit", json={"n": 3}, timeout=5).json()["task_id"]
    wait_for(f"{url}/explode", task_id, "failed")
    got = requests.get(f"{url}/explode/get", params={"task_id": task_id}, timeout=5)
    assert got.status_code == 500
    assert got.json() == {"error": "explode() raised RuntimeError: cannot score 3"}
    retried = requests.post(f"{url}/explode/retry", params={"task_id": task_id}, timeout=5).json()
    assert retried["task_id"] != task_id
    wait_for(f"{url}/explode", retried["task_id"], "failed")


def test_bad_requests_name_what_is_wrong(url):
    bad = requests.post(f"{url}/score_file/submit", json={"rows": "many"}, timeout=5)
    assert bad.status_code == 400 and bad.json()["field"].startswith("rows")
    missing = requests.get(f"{url}/score_file/status", timeout=5)
    assert missing.status_code == 400 and missing.json()["field"] == "task_id"
    unknown = requests.get(f"{url}/score_file/status", params={"task_id": "nope"}, timeout=5)
    assert unknown.status_code == 404
    assert requests.get(f"{url}/score_file/submit", timeout=5).status_code == 405
    # A task id of another API is not this API's.
    task_id = requests.post(f"{url}/shout/submit", json={"text": "x"}, timeout=5).json()["task_id"]
    assert requests.get(f"{url}/score_file/status", params={"task_id": task_id}, timeout=5).status_code == 404


def test_cancel_stops_a_queued_task_and_flags_a_running_one(serve, tmp_path):
    gate = Gate()
    url = serve("gated", gate.handler(), task_home=tmp_path).url + "/gated"
    first = requests.post(f"{url}/submit", json={"n": 1}, timeout=5).json()["task_id"]
    wait_for(url, first, "in_progress")
    second = requests.post(f"{url}/submit", json={"n": 2}, timeout=5).json()["task_id"]
    assert requests.get(f"{url}/status", params={"task_id": second}, timeout=5).json()["status"] == "pending"
    assert requests.get(f"{url}/get", params={"task_id": second}, timeout=5).status_code == 400

    canceled = requests.put(f"{url}/cancel", params={"task_id": second}, timeout=5).json()
    assert canceled["status"] == "canceled"
    flagged = requests.put(f"{url}/cancel", params={"task_id": first}, timeout=5).json()
    assert flagged["status"] == "in_progress" and flagged["cancel_requested"] is True
    assert gate.saw_cancel.wait(5), "the running handler never saw cancel_requested()"
    wait_for(url, first, "canceled")
    time.sleep(0.6)  # a worker's idle poll: the canceled queued task must not start
    assert gate.started == [1]
    again = requests.put(f"{url}/cancel", params={"task_id": first}, timeout=5)
    assert again.status_code == 400 and "already finished" in again.json()["error"]


def test_full_queue_refuses_with_503_and_retry_after(serve, tmp_path):
    gate = Gate()
    url = serve("bounded", gate.handler(max_queue_size=2), task_home=tmp_path).url + "/gated"
    running = requests.post(f"{url}/submit", json={"n": 0}, timeout=5).json()["task_id"]
    wait_for(url, running, "in_progress")
    queued = [requests.post(f"{url}/submit", json={"n": i}, timeout=5) for i in (1, 2)]
    assert [r.status_code for r in queued] == [200, 200]
    refused = requests.post(f"{url}/submit", json={"n": 3}, timeout=5)
    assert refused.status_code == 503
    assert int(refused.headers["retry-after"]) >= 1
    gate.release.set()
    for answer in queued:
        wait_for(url, answer.json()["task_id"], "completed")
    assert requests.post(f"{url}/submit", json={"n": 4}, timeout=5).status_code == 200


def test_results_and_queued_tasks_survive_a_hot_swap(tmp_path):
    gate = Gate()
    app = ServiceApp(ServiceDefinition.from_functions("swap", [gate.handler()]), task_home=tmp_path)
    server = ThreadedServer(app, "127.0.0.1", None)
    server.start()
    try:
        url = f"{server.url}/gated"
        done = requests.post(f"{url}/submit", json={"n": 1}, timeout=5).json()["task_id"]
        gate.release.set()
        wait_for(url, done, "completed")
        gate.release.clear()
        blocking = requests.post(f"{url}/submit", json={"n": 2}, timeout=5).json()["task_id"]
        wait_for(url, blocking, "in_progress")
        queued = requests.post(f"{url}/submit", json={"n": 3}, timeout=5).json()["task_id"]

        @api(task=True, name="gated")
        def new_gated(n: int) -> int:
            return n * 100

        app.swap(ServiceDefinition.from_functions("swap", [new_gated]))
        gate.release.set()
        assert requests.get(f"{url}/get", params={"task_id": done}, timeout=5).json() == 1
        wait_for(url, blocking, "completed")  # the running one finished on the old handler
        wait_for(url, queued, "completed")
        assert requests.get(f"{url}/get", params={"task_id": queued}, timeout=5).json() == 300
    finally:
        server.stop()
        app.close()


def _rows(store: Path) -> int:
    with sqlite3.connect(store) as db:
        return db.execute("SELECT count(*) FROM tasks").fetchone()[0]


def test_a_finished_task_expires_on_time_with_no_other_task_finishing(serve, tmp_path, monkeypatch):
    monkeypatch.setenv("BENTO_JUPYTER_TASK_RETENTION", "0.5")
    server = serve("short", score_file, task_home=tmp_path)
    url = server.url + "/score_file"
    task_id = requests.post(f"{url}/submit", json={"rows": [[1]]}, timeout=5).json()["task_id"]
    wait_for(url, task_id, "completed")
    finished = time.monotonic()
    assert requests.get(f"{url}/get", params={"task_id": task_id}, timeout=5).json() == {"mean": 1.0, "n": 1}
    (store,) = (tmp_path / "tasks").glob("short*.sqlite3")
    time.sleep(max(0.0, finished + 0.6 - time.monotonic()))
    # Read after its retention: gone from every route and from the sidebar's list, though nothing else ran.
    for route in ("status", "get"):
        assert requests.get(f"{url}/{route}", params={"task_id": task_id}, timeout=5).status_code == 404
    assert requests.put(f"{url}/cancel", params={"task_id": task_id}, timeout=5).status_code == 404
    assert requests.post(f"{url}/retry", params={"task_id": task_id}, timeout=5).status_code == 404
    assert server.app.tasks.store.recent() == []
    # ...and deleted from disk by the idle workers within their maintenance period.
    deadline = time.monotonic() + server.app.tasks.maintenance_s + 2
    while _rows(store) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _rows(store) == 0


def test_tasks_past_their_retention_are_deleted_when_the_server_starts(tmp_path, monkeypatch):
    from bento_jupyter.server.task_store import TaskStore
    from bento_jupyter.server.tasks import task_store_path
    from bento_jupyter.service.task_status import TaskStatus

    path = task_store_path(tmp_path, "aging")
    earlier = TaskStore(path)  # a server of two days ago, which kept everything
    old, recent = earlier.add("score_file", b"{}"), earlier.add("score_file", b"{}")
    for record in (old, recent):
        earlier.finish(record.task_id, TaskStatus.COMPLETED, b"1", "application/json", 200)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE tasks SET completed_at = ? WHERE task_id = ?", (time.time() - 2 * 86400, old.task_id))
    earlier.close()
    monkeypatch.setenv("BENTO_JUPYTER_TASK_RETENTION", "86400")
    app = ServiceApp(ServiceDefinition.from_functions("aging", [score_file]), task_home=tmp_path)
    try:
        with sqlite3.connect(path) as db:
            assert [row[0] for row in db.execute("SELECT task_id FROM tasks")] == [recent.task_id]
    finally:
        app.close()


def test_max_concurrency_bounds_tasks_across_servers_sharing_a_queue(serve, tmp_path):
    """Two servers on one task file (as ``serve --workers 2`` runs): one task at a time in all."""
    runs: list[tuple[float, float]] = []

    @api(task=True, max_concurrency=1)
    def one_at_a_time(seconds: float) -> float:
        began = time.monotonic()
        time.sleep(seconds)
        runs.append((began, time.monotonic()))
        return seconds

    scope = bento_task_scope("sha256:" + "ab" * 32)
    urls = [serve("bounded", one_at_a_time, task_home=tmp_path, task_scope=scope).url for _ in range(2)]
    ids = [
        requests.post(f"{urls[i % 2]}/one_at_a_time/submit", json={"seconds": 0.15}, timeout=5).json()["task_id"]
        for i in range(6)
    ]
    for task_id in ids:
        wait_for(f"{urls[0]}/one_at_a_time", task_id, "completed")
    runs.sort()
    assert len(runs) == 6
    assert all(earlier[1] <= later[0] for earlier, later in itertools.pairwise(runs)), runs


def test_schema_and_openapi_describe_task_routes(url):
    schema = requests.get(f"{url}/schema.json", timeout=5).json()
    assert {r["name"]: r["is_task"] for r in schema["routes"]} == {"score_file": True, "shout": True, "explode": True}
    paths = requests.get(f"{url}/docs.json", timeout=5).json()["paths"]
    assert set(paths["/score_file/submit"]) == {"post"}
    assert set(paths["/score_file/cancel"]) == {"put"}
    status = paths["/score_file/status"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert status["properties"]["status"]["enum"] == ["pending", "in_progress", "completed", "failed", "canceled"]


SERVER_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import uvicorn
    from bento_jupyter import api
    from bento_jupyter.server.app import ServiceApp
    from bento_jupyter.service.definition import ServiceDefinition

    @api(task=True)
    def slow(seconds: float) -> float:
        time.sleep(seconds)
        return seconds

    app = ServiceApp(ServiceDefinition.from_functions("restart", [slow]), task_home=Path(sys.argv[1]))
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", lifespan="off")
    """
)


def _start_server(script: Path, home: Path, port: int) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen([sys.executable, str(script), str(home), str(port)], env=os.environ.copy())
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            requests.get(f"{url}/readyz", timeout=1)
            return process, url + "/slow"
        except requests.ConnectionError:
            assert process.poll() is None and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)


@pytest.mark.integration
def test_a_restarted_server_keeps_results_fails_interrupted_tasks_and_runs_queued_ones(tmp_path):
    script = tmp_path / "server.py"
    script.write_text(SERVER_SCRIPT)
    with socket.socket() as sock:  # an ephemeral port, away from the 3000+ range test servers scan
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process, url = _start_server(script, tmp_path, port)
    try:
        done = requests.post(f"{url}/submit", json={"seconds": 0}, timeout=5).json()["task_id"]
        wait_for(url, done, "completed")
        interrupted = requests.post(f"{url}/submit", json={"seconds": 60}, timeout=5).json()["task_id"]
        wait_for(url, interrupted, "in_progress")
        queued = requests.post(f"{url}/submit", json={"seconds": 0.1}, timeout=5).json()["task_id"]
    finally:
        process.send_signal(signal.SIGKILL)  # the worst case: no chance to tidy up
        process.wait(10)
    process, url = _start_server(script, tmp_path, port)
    try:
        assert requests.get(f"{url}/get", params={"task_id": done}, timeout=5).json() == 0
        wait_for(url, interrupted, "failed")
        error = requests.get(f"{url}/get", params={"task_id": interrupted}, timeout=5)
        assert error.status_code == 500 and "server stopped" in error.json()["error"]
        wait_for(url, queued, "completed")
    finally:
        process.terminate()
        process.wait(10)


def test_a_kernel_service_and_a_served_bento_of_the_same_name_keep_separate_queues(serve, tmp_path):
    gate = Gate()
    digest = "sha256:" + "ab" * 32
    kernel = serve("same", gate.handler(), task_home=tmp_path, task_scope=kernel_task_scope("k1")).url + "/gated"
    bento = serve("same", gate.handler(), task_home=tmp_path, task_scope=bento_task_scope(digest)).url + "/gated"
    restarted = serve("same", gate.handler(), task_home=tmp_path, task_scope=bento_task_scope(digest)).url + "/gated"
    in_kernel = requests.post(f"{kernel}/submit", json={"n": 1}, timeout=5).json()["task_id"]
    served = requests.post(f"{bento}/submit", json={"n": 2}, timeout=5).json()["task_id"]
    for url, other in ((kernel, served), (bento, in_kernel)):
        assert requests.get(f"{url}/status", params={"task_id": other}, timeout=5).status_code == 404
    # Another process of the same bento (a restart, a second worker) shares its queue.
    assert requests.get(f"{restarted}/status", params={"task_id": served}, timeout=5).status_code == 200
    gate.release.set()
    wait_for(kernel, in_kernel, "completed")
    wait_for(bento, served, "completed")
