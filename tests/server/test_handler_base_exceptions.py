"""Whatever a handler raises -- any BaseException: SystemExit, KeyboardInterrupt, GeneratorExit, StopIteration, a
CancelledError of its own -- its request gets the documented answer (a 500 whose JSON names the exception, or a
stream's error frame), and the service and its threads live on. Over real uvicorn on 127.0.0.1, with requests."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator

import numpy as np
import pytest
import requests
from pydantic import BaseModel, field_validator

from bento_jupyter import api
from tests.server.test_tasks import wait_for

RAISED: list[type[BaseException]] = [
    SystemExit,
    KeyboardInterrupt,
    GeneratorExit,
    StopIteration,
    asyncio.CancelledError,
    MemoryError,
    ValueError,
]
FORMATS = {"sse": "text/event-stream", "ndjson": "application/x-ndjson", "json": "application/json"}


def _raise(kind: int) -> None:
    raise RAISED[kind](f"boom {kind}")


@api(max_concurrency=1, max_queue_size=1)  # one slot: a call that never settles would hold it
def plain(kind: int) -> int:
    _raise(kind)
    return 0


@api
async def coroutine(kind: int) -> int:
    await asyncio.sleep(0)
    _raise(kind)
    return 0


@api(batchable=True, max_batch_size=4)
def batched(x: np.ndarray) -> np.ndarray:
    _raise(int(x[0]))
    return x


@api
def generator(kind: int, after: int) -> Iterator[int]:
    yield from range(after)
    _raise(kind)


@api
async def async_generator(kind: int, after: int) -> AsyncIterator[int]:
    for item in range(after):
        await asyncio.sleep(0)
        yield item
    _raise(kind)


@api(task=True)
def task(kind: int) -> int:
    _raise(kind)
    return 0


@api(task=True)
async def async_task(kind: int) -> int:
    await asyncio.sleep(0)
    _raise(kind)
    return 0


@api
def ok() -> int:
    return 1


class Checked(BaseModel):
    kind: int

    @field_validator("kind")
    @classmethod
    def _check(cls, kind: int) -> int:
        if kind >= 0:
            _raise(kind)
        return kind


@api
def validated(c: Checked) -> int:
    return 0


@api
def validated_stream(c: Checked) -> Iterator[int]:
    yield 0


@api
def checked_items(kind: int) -> Iterator[Checked]:
    yield {"kind": -1}
    yield {"kind": kind}


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    from bento_jupyter.server.app import ServiceApp
    from bento_jupyter.server.runner import ThreadedServer
    from bento_jupyter.service.definition import ServiceDefinition

    functions = (plain, coroutine, batched, generator, async_generator, task, async_task, ok)
    functions += (validated, validated_stream, checked_items)
    app = ServiceApp(ServiceDefinition.from_functions("raising", functions), task_home=tmp_path_factory.mktemp("t"))
    server = ThreadedServer(app, "127.0.0.1", None)
    server.start()
    yield server.url
    server.stop()


def _failed(api_name: str, kind: int) -> str:
    return f"{api_name}() raised {RAISED[kind].__name__}: boom {kind}"


def _assert_alive(url: str) -> None:
    assert requests.post(f"{url}/ok", timeout=5).json() == 1


KINDS = pytest.mark.parametrize("kind", range(len(RAISED)), ids=[raised.__name__ for raised in RAISED])


@KINDS
@pytest.mark.parametrize("api_name", ["plain", "coroutine"])
@pytest.mark.parametrize("v2", [False, True], ids=["route", "v2"])
def test_a_plain_handler_raising_anything_is_a_500_naming_it(url, api_name, v2, kind):
    route = f"v2/models/{api_name}/infer" if v2 else api_name
    body = {"inputs": [{"name": "kind", "shape": [1], "datatype": "INT64", "data": [kind]}]} if v2 else {"kind": kind}
    for _ in range(2):  # again: its slot was given back
        answer = requests.post(f"{url}/{route}", json=body, timeout=5)
        assert answer.status_code == 500, answer.text
        assert answer.headers["content-type"] == "application/json"
        assert answer.json() == {"error": _failed(api_name, kind)}
    _assert_alive(url)


@KINDS
def test_a_batchable_handler_raising_anything_is_a_500_naming_it(url, kind):
    answer = requests.post(f"{url}/batched", json={"x": [kind]}, timeout=5)
    assert answer.status_code == 500, answer.text
    assert answer.json() == {"error": _failed("batched", kind)}
    _assert_alive(url)


@KINDS
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("api_name", ["generator", "async_generator"])
def test_a_generator_raising_anything_before_its_first_item_is_a_500_naming_it(url, api_name, fmt, kind):
    headers = {"accept": FORMATS[fmt]}
    answer = requests.post(f"{url}/{api_name}", json={"kind": kind, "after": 0}, headers=headers, timeout=5)
    assert answer.status_code == 500, answer.text
    assert answer.json() == {"error": _failed(api_name, kind)}
    _assert_alive(url)


@KINDS
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("api_name", ["generator", "async_generator"])
def test_a_generator_raising_anything_after_items_ends_with_its_error(url, api_name, fmt, kind):
    headers = {"accept": FORMATS[fmt]}
    answer = requests.post(f"{url}/{api_name}", json={"kind": kind, "after": 2}, headers=headers, timeout=5)
    error = {"error": _failed(api_name, kind)}
    if fmt == "json":
        assert answer.status_code == 500, answer.text
        assert answer.json() == error
    elif fmt == "ndjson":
        assert answer.status_code == 200
        assert [json.loads(line) for line in answer.text.splitlines()] == [0, 1, error]
    else:
        assert answer.status_code == 200
        events = answer.text.strip().split("\n\n")
        assert events[:2] == ["id: 1\ndata: 0", "id: 2\ndata: 1"]
        assert events[2:] == [f"event: error\ndata: {json.dumps(error, separators=(',', ':'))}"]
    _assert_alive(url)


@KINDS
@pytest.mark.parametrize("api_name", ["task", "async_task"])
def test_a_task_raising_anything_fails_naming_it_and_the_worker_lives_on(url, api_name, kind):
    for _ in range(2):  # the second runs: the worker that ran the first is alive
        task_id = requests.post(f"{url}/{api_name}/submit", json={"kind": kind}, timeout=5).json()["task_id"]
        wait_for(f"{url}/{api_name}", task_id, "failed")
        got = requests.get(f"{url}/{api_name}/get", params={"task_id": task_id}, timeout=5)
        assert got.status_code == 500
        assert got.json() == {"error": _failed(api_name, kind)}


@KINDS
@pytest.mark.parametrize("route", ["validated", "validated_stream", "v2/models/validated/infer"])
def test_a_validator_of_the_apis_own_types_raising_anything_is_a_500_naming_it(url, route, kind):
    api_name = route.split("/")[-2] if route.startswith("v2/") else route
    argument = {"kind": kind}
    if route.startswith("v2/"):
        body = {"inputs": [{"name": "c", "shape": [1], "datatype": "BYTES", "data": [json.dumps(argument)]}]}
    else:
        body = {"c": argument}
    answer = requests.post(f"{url}/{route}", json=body, timeout=5)
    if RAISED[kind] is ValueError:  # pydantic's own: the client's input is invalid
        assert answer.status_code == 400, answer.text
        assert answer.json() == {"error": f"Value error, boom {kind}", "field": "c.kind"}
    else:
        assert answer.status_code == 500, answer.text
        assert answer.json() == {"error": f"validating the arguments of {_failed(api_name, kind)}"}
    _assert_alive(url)


@KINDS
@pytest.mark.parametrize("fmt", ["sse", "ndjson"])
def test_a_validator_of_a_streams_item_type_raising_anything_ends_it_with_its_error(url, fmt, kind):
    answer = requests.post(f"{url}/checked_items", json={"kind": kind}, headers={"accept": FORMATS[fmt]}, timeout=5)
    assert answer.status_code == 200
    if fmt == "ndjson":
        *items, last = [json.loads(line) for line in answer.text.splitlines()]
    else:
        *events, event = answer.text.strip().split("\n\n")
        items = [json.loads(e.split("data: ", 1)[1]) for e in events]
        assert event.startswith("event: error\n"), event
        last = json.loads(event.split("data: ", 1)[1])
    assert items == [{"kind": -1}]
    if RAISED[kind] is ValueError:  # a validation error: the item does not match its type
        assert last["error"].startswith("checked_items() yielded item 1, which does not match its declared item type")
    else:
        assert last == {
            "error": f"checked_items() yielded an item that cannot be encoded: {RAISED[kind].__name__}: boom {kind}"
        }
    _assert_alive(url)


@api
def slow_generator(n: int) -> Iterator[int]:
    for item in range(n):
        time.sleep(0.1)
        yield item


@api
async def slow_async_generator(n: int) -> AsyncIterator[int]:
    for item in range(n):
        await asyncio.sleep(0.1)
        yield item


def test_a_stream_cut_by_stopping_the_service_ends_with_its_error_frame():
    from bento_jupyter.server.app import ServiceApp
    from bento_jupyter.server.runner import ThreadedServer
    from bento_jupyter.service.definition import ServiceDefinition

    definition = ServiceDefinition.from_functions("stopping", (slow_generator, slow_async_generator))
    server = ThreadedServer(ServiceApp(definition), "127.0.0.1", None)
    server.start()
    bodies: dict[tuple[str, str], str] = {}

    def read(api_name: str, fmt: str) -> None:
        headers = {"accept": FORMATS[fmt]}
        answer = requests.post(f"{server.url}/{api_name}", json={"n": 200}, headers=headers, timeout=30)
        bodies[api_name, fmt] = answer.text

    streams = [(name, fmt) for name in ("slow_generator", "slow_async_generator") for fmt in ("sse", "ndjson")]
    readers = [threading.Thread(target=read, args=stream) for stream in streams]
    for reader in readers:
        reader.start()
    time.sleep(0.5)
    server.stop(timeout=15)  # past the 5 s grace period the streams are cancelled
    for reader in readers:
        reader.join(15)
    stopped = {"error": "the service stopped before this request was answered", "code": "stopped"}
    assert sorted(bodies) == sorted(streams)
    for (api_name, fmt), body in bodies.items():
        if fmt == "ndjson":
            *items, last = [json.loads(line) for line in body.splitlines()]
        else:
            *events, event = body.strip().split("\n\n")
            items = [json.loads(e.split("data: ", 1)[1]) for e in events]
            assert event.startswith("event: error\n"), (api_name, event)
            last = json.loads(event.split("data: ", 1)[1])
        assert items == list(range(len(items))) and items, (api_name, fmt)
        assert last == stopped, (api_name, fmt)
