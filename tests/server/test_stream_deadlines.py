"""A stream's deadline (Envoy's x-envoy-expected-rq-timeout-ms, @api(timeout=), the server's cap) bounds the whole
response, as Envoy's route timeout does: the stream ends there and its generator computes nothing more."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator

import pytest
import requests

from bento_jupyter import api
from bento_jupyter.server.deadlines import DEADLINE_HEADER
from tests.server.test_streaming import parse_sse

STEP_S = 0.1  # each item takes this long to compute
DEADLINE_S = 0.35
ITEMS = 40  # 4 s of items: far past the deadline


def ticking(computed: list[int], kind: str, timeout: float | None, first_after_s: float = 0.0):
    """A generator API (sync or async) computing one item per STEP_S, after ``first_after_s``."""

    @api(name="ticks", timeout=timeout)
    def sync_ticks() -> Iterator[int]:
        time.sleep(first_after_s)
        for i in range(ITEMS):
            time.sleep(STEP_S)
            computed.append(i)
            yield i

    @api(name="ticks", timeout=timeout)
    async def async_ticks() -> AsyncIterator[int]:
        await asyncio.sleep(first_after_s)
        for i in range(ITEMS):
            await asyncio.sleep(STEP_S)
            computed.append(i)
            yield i

    return sync_ticks if kind == "sync" else async_ticks


def settled(computed: list[int]) -> int:
    """How many items were computed, once nothing more is (checked over a few items' time; a sync step running when
    the stream ended finishes on its thread first)."""
    time.sleep(2 * STEP_S)
    count = len(computed)
    time.sleep(5 * STEP_S)
    assert len(computed) == count, "the generator kept computing after the stream ended"
    return count


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize(
    ("accept", "deadline_from"),
    [("text/event-stream", "header"), ("application/x-ndjson", "api timeout"), ("application/json", "header")],
)
def test_a_stream_ends_at_its_deadline_and_computes_nothing_after_it(serve, kind, accept, deadline_from):
    computed: list[int] = []
    timeout = DEADLINE_S if deadline_from == "api timeout" else None
    headers = {"accept": accept}
    if deadline_from == "header":
        headers[DEADLINE_HEADER] = str(int(DEADLINE_S * 1000))
    url = serve("deadlines", ticking(computed, kind, timeout)).url
    answer = requests.post(f"{url}/ticks", json={}, headers=headers, timeout=30)
    count = settled(computed)
    assert 1 <= count <= DEADLINE_S / STEP_S + 1  # the items due by the deadline, at most one step more
    if accept == "application/json":  # a whole answer: a plain 504
        assert answer.status_code == 504 and "deadline" in answer.json()["error"]
        return
    assert answer.status_code == 200  # the stream had begun: it ends with its error frame
    if accept == "text/event-stream":
        events = list(parse_sse(iter([answer.content])))
        items, (last_event, last_data) = events[:-1], events[-1]
        assert last_event == "error" and "deadline" in json.loads(last_data)["error"]
        assert [json.loads(d) for _, d in items] == list(range(len(items)))
    else:
        *items, last = [json.loads(line) for line in answer.text.splitlines()]
        assert items == list(range(len(items))) and "deadline" in last["error"]
    assert len(items) <= count


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_stream_with_no_item_by_its_deadline_is_a_504(serve, kind):
    computed: list[int] = []
    url = serve("deadlines", ticking(computed, kind, None, first_after_s=1.0)).url
    headers = {DEADLINE_HEADER: str(int(DEADLINE_S * 1000))}
    answer = requests.post(f"{url}/ticks", json={}, headers=headers, timeout=30)
    assert answer.status_code == 504 and "deadline" in answer.json()["error"]
    time.sleep(1.0)  # past when the first item would have been computed
    assert settled(computed) == (0 if kind == "async" else 1)  # a sync step already running ends on its thread


@pytest.mark.parametrize("items_before", [0, 1])
def test_a_sync_step_that_outlives_the_deadline_does_not_hold_the_answer(serve, items_before):
    """``time.sleep(3); yield`` with a 0.35 s deadline: the 504 (no item yet) or the error frame (after one) comes at
    the deadline while the step still runs; the step then finishes on its thread, and the generator is closed."""
    release, closed, computed = threading.Event(), threading.Event(), []

    @api(timeout=DEADLINE_S)
    def stuck() -> Iterator[int]:
        try:
            for i in range(3):
                if i == items_before:
                    release.wait(30)  # a step that outlives the deadline
                computed.append(i)
                yield i
        finally:
            closed.set()

    url = serve("deadlines", stuck).url
    try:
        answer = requests.post(f"{url}/stuck", json={}, headers={"accept": "application/x-ndjson"}, timeout=30)
        assert not release.is_set() and computed == list(range(items_before))  # answered while the step runs
    finally:
        release.set()
    if items_before == 0:
        assert answer.status_code == 504 and "deadline" in answer.json()["error"]
    else:
        *items, last = [json.loads(line) for line in answer.text.splitlines()]
        assert items == [0] and "deadline" in last["error"]
    assert closed.wait(10)  # closed once its step returned: its finally ran
    assert settled(computed) == items_before + 1  # the step in progress finished; nothing after it
