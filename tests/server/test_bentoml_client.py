"""BentoML's own client (1.4, from its own virtual environment) talks to our server unchanged."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest

from bento_jupyter import api

BENTOML_PYTHON = Path(__file__).resolve().parents[2] / ".venv-bentoml" / "bin" / "python"

CLIENT_SCRIPT = """
import asyncio, json, sys, time
import bentoml, numpy as np
with bentoml.SyncHTTPClient(sys.argv[1], timeout=10) as client:
    out = client.predict(inputs=np.array([[1.0, 2.0, 3.0, 4.0]]))
    print(json.dumps({
        "predict": out.tolist(), "predict_type": type(out).__name__,
        "describe": client.describe(text="hello"),
        "greet": client.greet(name="bento"),
        "tokens": list(client.tokens(prompt="hi", n=4)),
        "scores": list(client.scores(n=3)),
    }))
    received = []
    try:
        for item in client.fails_midway(n=2):
            received.append(item)
        print(json.dumps({"midway": received, "raised": False}))
    except Exception as exc:  # BentoML's client raises on a stream its server broke off
        print(json.dumps({"midway": received, "raised": True}))
    try:
        client.describe(text=["not", "a", "string"])
    except bentoml.exceptions.BentoMLException as exc:
        print(json.dumps({"error_code": int(exc.error_code)}))
    client._opened_files = []  # BentoML 1.4's SyncHTTPClient never sets what its submit() needs (README)
    sync_task = client.total.submit(rows=[[1.0, 2.0]])
    while sync_task.get_status().value in ("pending", "in_progress"):
        time.sleep(0.02)
    print(json.dumps({"sync_task": sync_task.get()}))


async def tasks():
    async with bentoml.AsyncHTTPClient(sys.argv[1], timeout=10) as client:
        task = await client.total.submit(rows=[[1.0, 2.0], [3.0, 4.5]])
        while (await task.get_status()).value in ("pending", "in_progress"):
            await asyncio.sleep(0.02)
        retried = await task.retry()
        return {"status": (await task.get_status()).value, "result": await task.get(), "retry": retried.id != task.id}


print(json.dumps(asyncio.run(tasks())))
"""


@api(batchable=True, max_batch_size=8)
def predict(inputs: np.ndarray) -> np.ndarray:
    return inputs.sum(axis=1, keepdims=True)


def describe(text: str) -> dict:
    return {"length": len(text)}


def greet(name: str) -> str:
    return f"hi {name}"


def tokens(prompt: str, n: int) -> Iterator[str]:
    """Streamed: BentoML's client reads one item per chunk, so items leave apart in time as tokens do."""
    for i in range(n):
        time.sleep(0.05)
        yield f"{prompt}-{i} "


@api
def fails_midway(n: int) -> Iterator[int]:
    yield from range(n)
    raise RuntimeError("the model fell over")


@api(task=True)
def total(rows: list[list[float]]) -> float:
    return float(np.sum(rows))


async def scores(n: int) -> AsyncIterator[dict]:
    for i in range(n):
        await asyncio.sleep(0.05)
        yield {"step": i, "score": i / 2}


@pytest.mark.integration
def test_bentoml_sync_http_client_calls_our_server(serve, tmp_path):
    if not BENTOML_PYTHON.exists():
        pytest.skip(".venv-bentoml is missing: run bash .ci/install")
    server = serve("compat", predict, describe, greet, tokens, scores, fails_midway, total, task_home=tmp_path)
    done = subprocess.run(
        [str(BENTOML_PYTHON), "-c", CLIENT_SCRIPT, server.url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    answers, midway, error, sync_task, task = (json.loads(line) for line in done.stdout.strip().splitlines())
    assert answers == {
        "predict": [[10.0]],
        "predict_type": "ndarray",
        "describe": {"length": 5},
        "greet": "hi bento",
        "tokens": ["hi-0 ", "hi-1 ", "hi-2 ", "hi-3 "],
        "scores": [{"step": 0, "score": 0.0}, {"step": 1, "score": 0.5}, {"step": 2, "score": 1.0}],
    }
    assert midway["raised"] and midway["midway"] in ([], [0], [0, 1]), midway  # never a silently short stream
    assert task == {"status": "completed", "result": 10.5, "retry": True}
    assert error == {"error_code": 400}
    assert sync_task == {"sync_task": 3.0}


EVERY_KIND_SCRIPT = """
import json, sys
import bentoml, numpy as np, torch
calls = {
    "number": dict(x=1.5, times=3),
    "flag": dict(on=True),
    "text": dict(value="bento"),
    "numbers": dict(values=[1.0, 2.5]),
    "mapping": dict(counts={"a": 1, "b": 2**70}),
    "maybe": dict(n=4),
    "tier": dict(t="free"),
    "customer": dict(c={"name": "Ann", "age": 41, "address": {"street": "1 Main", "city": "Oslo"}, "scores": [0.5]}),
    "anything": dict(value={"nested": [1, None, "x"]}),
    "tensor": dict(x=np.array([[1.0, 2.0], [3.0, 4.0]])),
    "torch_tensor": dict(x=torch.tensor([1.5, -2.0])),
    "batched_rows": dict(rows=np.array([[1.0, 2.0]])),
    "batched_texts": dict(texts=["a", "bento"]),
    "async_echo": dict(value=7),
    "shaped": dict(x=np.array([[1.0, 2.0, 3.0]])),
    "batched_counts": dict(rows=np.array([[1, 2], [30, 40]])),
}
out = {}
with bentoml.SyncHTTPClient(sys.argv[1], timeout=30) as client:
    for name, kwargs in calls.items():
        answer = getattr(client, name)(**kwargs)
        if hasattr(answer, "tolist"):
            answer = answer.tolist()
        out[name] = answer
print(json.dumps(out))
"""


@pytest.mark.integration
def test_bentoml_sync_http_client_calls_an_api_of_every_input_kind(serve):
    from tests.server.kinds_service import ALL

    if not BENTOML_PYTHON.exists():
        pytest.skip(".venv-bentoml is missing: run bash .ci/install")
    server = serve("kinds", *ALL)
    done = subprocess.run(
        [str(BENTOML_PYTHON), "-c", EVERY_KIND_SCRIPT, server.url],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {
        "number": 4.5,
        "flag": False,
        "text": "BENTO",
        "numbers": [2.0, 5.0],
        "mapping": {"a": 2, "b": 2**70 + 1},
        "maybe": -4,
        "tier": "pro",
        "customer": {
            "name": "Ann",
            "age": 41,
            "address": {"street": "1 Main", "city": "Oslo"},
            "tier": "free",
            "scores": [0.5],
        },
        "anything": {"nested": [1, None, "x"]},
        "tensor": [4.0, 6.0],
        "torch_tensor": [3.0, -4.0],
        "batched_rows": [[2.0, 4.0]],
        "batched_texts": [1, 5],
        "async_echo": 7,
        "shaped": [[2.0, 4.0, 6.0]],
        "batched_counts": [3, 70],
    }


SIZED_SCRIPT = """
import asyncio, json, sys, bentoml
calls, out = json.loads(sys.argv[2]), []
with bentoml.SyncHTTPClient(sys.argv[1], timeout=60) as client:
    for name, size in calls:
        try:
            out.append([name, size, "items", list(getattr(client, name)(size=size))])
        except Exception as exc:
            out.append([name, size, "raised", type(exc).__name__])


async def read_async():
    async with bentoml.AsyncHTTPClient(sys.argv[1], timeout=60) as client:
        for name, size in calls:
            try:
                out.append([name, size, "items", [item async for item in getattr(client, name)(size=size)]])
            except Exception as exc:
                out.append([name, size, "raised", type(exc).__name__])


asyncio.run(read_async())
print(json.dumps(out))
"""
# Whole in one read of BentoML's client (httpcore reads at most 65536 bytes) with room for the chunk framing,
# and well past it.
FITS = [0, 1, 2, 100, 1000, 4095, 4096, 16384, 32768, 50000, 60000]
BEYOND = [70000, 131072, 300000, 1_000_000]


def padded(size: int) -> Iterator[dict]:
    yield {"pad": "x" * size}


def ascii_text(size: int) -> Iterator[str]:
    yield "y" * size


def utf8_text(size: int) -> Iterator[str]:
    yield "\u00e9" * (size // 2)  # two bytes each


def sized_outcomes(url: str, calls: list[tuple[str, int]]) -> list[list]:
    """What BentoML's own clients make of one item per call: [name, size, "items", items] or [.., "raised", type],
    for each call by ``SyncHTTPClient``, then for each by ``AsyncHTTPClient``."""
    done = subprocess.run(
        [str(BENTOML_PYTHON), "-c", SIZED_SCRIPT, url, json.dumps(calls)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.integration
def test_bentoml_client_reads_items_of_many_sizes_as_from_bentomls_own_server(serve):
    """BentoML's clients (sync and async) take each network read for one item, from its server as from ours: an item
    up to 64 KiB arrives whole, a bigger one in pieces (text: pieces that join to the item; JSON: an error,
    never a wrong item). test_streams_and_tasks checks the same sizes against BentoML's own server."""
    if not BENTOML_PYTHON.exists():
        pytest.skip(".venv-bentoml is missing: run bash .ci/install")
    server = serve("sized", padded, ascii_text, utf8_text)
    names = ("padded", "ascii_text", "utf8_text")
    fits = sized_outcomes(server.url, [(name, size) for size in FITS for name in names])
    for name, size, outcome, items in fits:
        expected = {"padded": {"pad": "x" * size}, "ascii_text": "y" * size, "utf8_text": "\u00e9" * (size // 2)}
        whole = [expected[name]] if expected[name] != "" else []  # an empty chunk is no item to that client
        assert (outcome, items) == ("items", whole), (name, size)
    beyond = sized_outcomes(server.url, [(name, size) for size in BEYOND for name in names[:2]])
    for name, size, outcome, got in beyond:
        if name == "padded":
            assert (outcome, got) == ("raised", "JSONDecodeError"), (name, size)
        else:
            assert outcome == "items" and len(got) > 1 and "".join(got) == "y" * size, (name, size, len(got))
