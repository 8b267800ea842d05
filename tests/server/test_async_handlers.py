"""``async def`` handlers run on an event loop of their own API, never on the server's: one that blocks holds only
itself, and a deadline still cancels one that awaits."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from bento_jupyter import api
from bento_jupyter.errors import ServiceDefinitionError
from bento_jupyter.service.definition import ServiceDefinition
from tests.server.overload_helpers import metric, raw_request, wait_for

BLOCK_S = 20  # how long a handler blocks unless the test wakes it (it does, once the server has answered)


def answers_while_blocked(url: str) -> list[int]:
    """Probes, metrics and another API, asked while a handler blocks its loop (a short timeout: a frozen server
    loop fails them)."""
    return [
        requests.get(f"{url}/readyz", timeout=3).status_code,
        requests.get(f"{url}/metrics", timeout=3).status_code,
        requests.post(f"{url}/quick", json={}, timeout=3).status_code,
        requests.post(f"{url}/v2/models/quick/infer", json={"inputs": []}, timeout=3).status_code,
    ]


@pytest.mark.parametrize("kind", ["plain", "stream"])
def test_an_async_handler_that_blocks_never_freezes_the_server(serve, kind):
    wake, entered = threading.Event(), threading.Event()
    server_threads: set[threading.Thread] = set()  # the server's loop runs on one: the handler must not

    async def blocks() -> dict:
        entered.set()
        wake.wait(BLOCK_S)  # a blocking call inside an async handler
        return {"on_server_thread": threading.current_thread() in server_threads}

    async def blocks_between_items(n: int = 2) -> AsyncIterator[dict]:
        for _ in range(n):
            entered.set()
            wake.wait(BLOCK_S)
            yield {"on_server_thread": threading.current_thread() in server_threads}

    def quick() -> str:
        return "ok"

    handler = blocks if kind == "plain" else blocks_between_items
    server = serve("async", handler, quick)
    server_threads.add(server._thread)
    with ThreadPoolExecutor(1) as pool:
        call = pool.submit(requests.post, f"{server.url}/{handler.__name__}", json={}, timeout=BLOCK_S + 10)
        assert entered.wait(10)
        try:
            assert answers_while_blocked(server.url) == [200, 200, 200, 200]
        finally:
            wake.set()
        answer = call.result()
    assert answer.status_code == 200
    assert '"on_server_thread":false' in answer.text.replace(" ", "")


def test_a_deadline_still_cancels_an_async_handler_at_its_await(serve):
    cancelled = threading.Event()

    @api(timeout=0.5)
    async def awaits_forever() -> int:
        try:
            await asyncio.sleep(BLOCK_S)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return 1

    server = serve("deadline", awaits_forever)
    answer = requests.post(f"{server.url}/awaits_forever", json={}, timeout=10)
    assert answer.status_code == 504
    wait_for(cancelled.is_set)


def test_a_batchable_async_handler_is_refused_with_what_to_declare_instead():
    @api(batchable=True)
    async def batch(rows: list[float]) -> list[float]:
        return rows

    with pytest.raises(ServiceDefinitionError, match="must be a plain \\(sync\\) function"):
        ServiceDefinition.from_functions("batched", [batch])


CLIENTS_THAT_LEAVE = {
    "raw socket closed, API route": ("socket", "/awaits"),
    "raw socket closed, v2 route": ("socket", "/v2/models/awaits/infer"),
    "requests timeout, API route": ("requests", "/awaits"),
}


@pytest.mark.parametrize("leaving", CLIENTS_THAT_LEAVE)
def test_a_client_that_leaves_cancels_a_running_async_handler_at_its_await(serve, leaving):
    how, path = CLIENTS_THAT_LEAVE[leaving]
    entered, cancelled, finished = threading.Event(), threading.Event(), threading.Event()

    async def awaits() -> int:
        entered.set()
        try:
            await asyncio.sleep(3)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        finished.set()
        return 1

    server = serve("leaving", awaits)
    body = b'{"inputs": []}' if path.startswith("/v2/") else b"{}"
    if how == "socket":
        sock = raw_request(server.url, path, body)
        assert entered.wait(10)
        sock.close()
    else:
        with pytest.raises(requests.Timeout):
            requests.post(f"{server.url}{path}", data=body, timeout=0.5)
    assert cancelled.wait(2), "the handler ran on after its client left"
    assert not finished.is_set()
    wait_for(lambda: metric(server.url, "bentoml_service_request_cancelled_total") == 1)
    assert metric(server.url, "bentoml_service_request_total") == 0  # nobody was answered, nothing counted 200
