"""A notebook's streaming and task APIs, exported, then served by bento-jupyter serve, BentoML and Ray Serve."""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path

import nbformat
import pytest
import requests
import yaml

from bento_jupyter.export.notebook import export_notebook
from tests.deploy.test_engines import BENTOML, RAY_DRIVER, RAY_PYTHON, deploy, running
from tests.integration.bento_process import free_port, served_bento
from tests.labserver.kernel_calls import LONG_JOB
from tests.server.test_bentoml_client import BEYOND, FITS, sized_outcomes

pytestmark = pytest.mark.integration

SERVING_CELL = (
    '''%%bento serve writer
import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import numpy as np

from bento_jupyter import api, cancel_requested


@api
def generate(prompt: str, n: int = 5) -> Iterator[str]:
    """Words, each sent as it is made."""
    for i in range(n):
        time.sleep(0.1)
        yield f"{prompt} {i}"


@api
async def progress(steps: int = 3) -> AsyncIterator[dict]:
    for step in range(steps):
        await asyncio.sleep(0.05)
        yield {"step": step, "done": (step + 1) / steps}


@api(task=True)
def score_file(rows: list[list[float]]) -> dict:
    """A job: submit now, fetch later."""
    return {"mean": float(np.mean(rows)), "n": len(rows)}


'''
    + LONG_JOB
    + '''

@api
def mislabeled() -> Iterator[int]:
    yield 1
    yield "two"


@api
def padded(size: int) -> Iterator[dict]:
    yield {"pad": "x" * size}


@api
def ascii_text(size: int) -> Iterator[str]:
    yield "y" * size


@api(task=True, max_concurrency=1)
def timed(seconds: float) -> list[float]:
    """When it ran (wall clock): one at a time, whichever worker runs it."""
    began = time.time()
    time.sleep(seconds)
    return [began, time.time()]
'''
)
WORDS = [f"hi {i}" for i in range(5)]
STEPS = [{"step": 0, "done": 1 / 3}, {"step": 1, "done": 2 / 3}, {"step": 2, "done": 1.0}]


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    """The writer service exported from a real kernel: ``OUT/writer`` is its bento."""
    root = tmp_path_factory.mktemp("writer")
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nb.cells = [nbformat.v4.new_code_cell("%load_ext bento_jupyter"), nbformat.v4.new_code_cell(SERVING_CELL)]
    nbformat.write(nb, root / "writer.ipynb")
    patch = pytest.MonkeyPatch()
    patch.setenv("BENTO_JUPYTER_HOME", str(root / "home"))
    try:
        (bundle,) = export_notebook(root / "writer.ipynb", root / "out").bundles
    finally:
        patch.undo()
    return bundle


def sse_items(response: requests.Response) -> list[tuple[str, float]]:
    """(data, seconds since the request) of each SSE event; items here are single-line."""
    began, items = time.perf_counter(), []
    for line in response.iter_lines(decode_unicode=True):
        if line.startswith("data: "):
            items.append((line[6:], time.perf_counter() - began))
    return items


def wait_for(url: str, task_id: str, done: tuple[str, ...] = ("completed", "failed", "canceled")) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = requests.get(f"{url}/status", params={"task_id": task_id}, timeout=10).json()["status"]
        if status in done:
            return status
        time.sleep(0.05)
    raise AssertionError(f"task {task_id} still {status}")


def test_build_records_streams_and_tasks_in_the_manifest(exported):
    manifest = {api["name"]: api for api in yaml.safe_load((exported / "bento.yaml").read_text())["apis"]}
    assert {name: (api["stream"], api["task"]) for name, api in manifest.items()} == {
        "generate": (True, False),
        "progress": (True, False),
        "score_file": (False, True),
        "long_job": (False, True),
        "timed": (False, True),
        "mislabeled": (True, False),
        "padded": (True, False),
        "ascii_text": (True, False),
    }


def test_bento_jupyter_serve_streams_and_keeps_tasks_across_a_restart(exported, tmp_path, monkeypatch):
    monkeypatch.setenv("BENTO_JUPYTER_HOME", str(tmp_path))
    with served_bento(str(exported)) as url:
        with requests.post(f"{url}/generate", json={"prompt": "hi"}, stream=True, timeout=30) as response:
            items = sse_items(response)
        assert [data for data, _ in items] == WORDS
        assert items[0][1] < items[-1][1] - 0.3  # the first word came well before the last
        ndjson = requests.post(f"{url}/progress", json={}, headers={"accept": "application/x-ndjson"}, timeout=30)
        assert [json.loads(line) for line in ndjson.text.splitlines()] == STEPS
        task_id = requests.post(f"{url}/score_file/submit", json={"rows": [[1, 2], [3, 5]]}, timeout=10).json()[
            "task_id"
        ]
        assert wait_for(f"{url}/score_file", task_id) == "completed"
        running_id = requests.post(f"{url}/long_job/submit", json={"seconds": 30}, timeout=10).json()["task_id"]
        wait_for(f"{url}/long_job", running_id, ("in_progress",))
        canceled = requests.put(f"{url}/long_job/cancel", params={"task_id": running_id}, timeout=10).json()
        assert canceled["cancel_requested"] is True
        assert wait_for(f"{url}/long_job", running_id) == "canceled"
    with served_bento(str(exported)) as url:  # a new process: the results are still there
        result = requests.get(f"{url}/score_file/get", params={"task_id": task_id}, timeout=10)
        assert result.json() == {"mean": 2.75, "n": 2}
        status = requests.get(f"{url}/long_job/status", params={"task_id": running_id}, timeout=10).json()
        assert status["status"] == "canceled"


def test_serve_workers_share_one_task_queue(exported, tmp_path, monkeypatch):
    monkeypatch.setenv("BENTO_JUPYTER_HOME", str(tmp_path))
    with served_bento(str(exported), "--workers", "2") as url:
        submitted = [
            requests.post(f"{url}/score_file/submit", json={"rows": [[i, i + 2]]}, timeout=10).json()["task_id"]
            for i in range(8)
        ]
        for i, task_id in enumerate(submitted):
            assert wait_for(f"{url}/score_file", task_id) == "completed"  # whichever worker is asked
            answer = requests.get(f"{url}/score_file/get", params={"task_id": task_id}, timeout=10).json()
            assert answer == {"mean": i + 1.0, "n": 1}


def test_max_concurrency_holds_across_serve_workers(exported, tmp_path, monkeypatch):
    monkeypatch.setenv("BENTO_JUPYTER_HOME", str(tmp_path))
    with served_bento(str(exported), "--workers", "2") as url:
        submitted = [
            requests.post(f"{url}/timed/submit", json={"seconds": 0.2}, timeout=10).json()["task_id"] for _ in range(6)
        ]
        runs = []
        for task_id in submitted:
            assert wait_for(f"{url}/timed", task_id) == "completed"
            runs.append(requests.get(f"{url}/timed/get", params={"task_id": task_id}, timeout=10).json())
    runs.sort()
    assert all(earlier[1] <= later[0] for earlier, later in itertools.pairwise(runs)), runs  # max_concurrency=1


@pytest.mark.timeout(600)
def test_bentoml_target_streams_and_runs_tasks_with_bentoml(exported, tmp_path, monkeypatch):
    """...and BentoML's client reads items of every size from our server as it does from BentoML's."""
    if not BENTOML.exists():
        pytest.skip(".venv-bentoml is missing: run bash .ci/install")
    monkeypatch.setenv("BENTO_JUPYTER_HOME", str(tmp_path / "home"))
    out = tmp_path / "bentoml"
    deploy(exported, "bentoml", out)
    source = (out / "writer" / "service.py").read_text()
    assert source.count("@bentoml.task(") == 3 and "yield from _functions['generate']" in source
    port = free_port()
    command = [str(BENTOML), "serve", ".", "--host", "127.0.0.1", "--port", str(port)]
    with running(command, out / "writer", port, "/readyz", 180) as url:
        began = time.perf_counter()
        chunks = []
        with requests.post(f"{url}/generate", json={"prompt": "hi"}, stream=True, timeout=30) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            for chunk in response.iter_content(None):
                chunks.append((chunk.decode(), time.perf_counter() - began))
        assert "".join(c for c, _ in chunks) == "".join(WORDS)  # BentoML sends each str item as it is
        assert chunks[0][1] < chunks[-1][1] - 0.3
        task_id = requests.post(f"{url}/score_file/submit", json={"rows": [[1, 2], [3, 5]]}, timeout=10).json()[
            "task_id"
        ]
        assert wait_for(f"{url}/score_file", task_id) == "completed"
        assert requests.get(f"{url}/score_file/get", params={"task_id": task_id}, timeout=10).json() == {
            "mean": 2.75,
            "n": 2,
        }
        calls = [(name, size) for size in FITS + BEYOND for name in ("padded", "ascii_text")]
        theirs = sized_outcomes(url, calls)
    with served_bento(str(exported)) as ours_url:
        ours = sized_outcomes(ours_url, calls)
    assert [_outcome(o) for o in ours] == [_outcome(o) for o in theirs]  # BentoML's client: the same either way
    assert [_outcome(o)[2] for o in theirs] == ["whole" if size in FITS else "split" for _, size in calls * 2]


def _outcome(answer: list) -> tuple:
    """An item that reached BentoML's client whole, or how it failed to (pieces vary with the reads)."""
    name, size, kind, got = answer
    if kind == "raised":
        return name, size, "split", got
    expected = [{"pad": "x" * size}] if name == "padded" else ["y" * size] if size else []
    if got == expected:
        return name, size, "whole", None
    return name, size, "split", "".join(got) == "y" * size


@pytest.mark.timeout(600)
def test_ray_target_streams_and_runs_tasks_through_ray_serve(exported, tmp_path, monkeypatch):
    if not RAY_PYTHON.exists():
        pytest.skip(".venv-ray is missing: run bash .ci/install")
    monkeypatch.setenv("BENTO_JUPYTER_HOME", str(tmp_path / "home"))  # where the ingress keeps tasks
    out = tmp_path / "ray"
    deploy(exported, "ray", out, "--cpu", "100m")
    port = free_port()
    with running([str(RAY_PYTHON), "-c", RAY_DRIVER, str(port)], out, port, "/readyz", 300) as url:
        with requests.post(f"{url}/generate", json={"prompt": "hi"}, stream=True, timeout=60) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            items = sse_items(response)
        assert [data for data, _ in items] == WORDS
        assert items[0][1] < items[-1][1] - 0.3
        ndjson = requests.post(f"{url}/progress", json={}, headers={"accept": "application/x-ndjson"}, timeout=60)
        assert [json.loads(line) for line in ndjson.text.splitlines()] == STEPS
        bad = requests.post(f"{url}/generate", json={"prompt": 3}, timeout=60)
        assert bad.status_code == 400 and bad.json()["field"] == "prompt"
        whole = requests.post(f"{url}/progress", json={}, headers={"accept": "application/json"}, timeout=60)
        assert whole.headers["content-type"].startswith("application/json") and whole.json() == STEPS
        prefers = {"accept": "text/event-stream;q=0.1, application/x-ndjson;q=0.8"}
        ndjson = requests.post(f"{url}/progress", json={}, headers=prefers, timeout=60)
        assert [json.loads(line) for line in ndjson.text.splitlines()] == STEPS
        assert requests.post(f"{url}/progress", json={}, headers={"accept": "text/html"}, timeout=60).status_code == 406
        lines = requests.post(f"{url}/mislabeled", headers={"accept": "application/x-ndjson"}, timeout=60).text
        first, error = (json.loads(line) for line in lines.splitlines())
        assert first == 1 and (error["item"], error.get("field")) == (1, None), error
        assert requests.post(f"{url}/score_file", json={"rows": [[1, 3]]}, timeout=60).json() == {"mean": 2.0, "n": 1}
        task_id = requests.post(f"{url}/score_file/submit", json={"rows": [[1, 2], [3, 5]]}, timeout=60).json()[
            "task_id"
        ]
        assert wait_for(f"{url}/score_file", task_id) == "completed"
        result = requests.get(f"{url}/score_file/get", params={"task_id": task_id}, timeout=60)
        assert result.json() == {"mean": 2.75, "n": 2}
        running_id = requests.post(f"{url}/long_job/submit", json={"seconds": 8}, timeout=60).json()["task_id"]
        wait_for(f"{url}/long_job", running_id, ("in_progress",))
        queued = requests.post(f"{url}/long_job/submit", json={"seconds": 5}, timeout=60).json()["task_id"]
        canceled = requests.put(f"{url}/long_job/cancel", params={"task_id": queued}, timeout=60).json()
        assert canceled["status"] == "canceled"
        asked = time.monotonic()
        requests.put(f"{url}/long_job/cancel", params={"task_id": running_id}, timeout=60)
        assert wait_for(f"{url}/long_job", running_id) == "canceled"  # Ray Serve canceled the request
        assert time.monotonic() - asked < 5  # well before the 8 s job would have finished
    assert (tmp_path / "home" / "tasks" / "writer.sqlite3").exists()
