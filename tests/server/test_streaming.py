"""Generator APIs stream over a real uvicorn on 127.0.0.1, read by real HTTP clients as items arrive."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import threading
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bento_jupyter.server.streaming import sse_event

GAP_S = 0.4
SLOW_ITEMS = 4


def sse_lines(chunks: Iterator[bytes]) -> Iterator[str]:
    """The lines of a text/event-stream as they arrive: only CR, LF and CRLF end a line there."""
    pending = ""
    for chunk in chunks:
        pending += chunk.decode()
        *complete, pending = re.split(r"\r\n|\r(?!$)|\n", pending)
        yield from complete


def parse_sse(chunks: Iterator[bytes]) -> Iterator[tuple[str, str]]:
    """(event, data) per event of a text/event-stream, as the HTML standard frames them."""
    event, data = "message", []
    for line in sse_lines(chunks):
        if line == "":
            if data:
                yield event, "\n".join(data)
            event, data = "message", []
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
        elif line.startswith("event:"):
            event = line[6:].strip()


def generate(prompt: str, n: int = 20) -> Iterator[str]:
    for i in range(n):
        yield f"{prompt} {i}"


def slow(n: int = SLOW_ITEMS) -> Iterator[int]:
    """Sleeps between items like a model generating tokens."""
    for i in range(n):
        if i:
            time.sleep(GAP_S)
        yield i


async def slow_async(n: int = SLOW_ITEMS) -> AsyncIterator[dict]:
    for i in range(n):
        if i:
            await asyncio.sleep(GAP_S)
        yield {"i": i}


def breaks(n: int) -> Iterator[int]:
    yield from range(n)
    raise RuntimeError("ran out of model")


def fails_at_once(n: int) -> Iterator[int]:
    raise ValueError(f"refuse {n}")
    yield n  # unreachable, but makes this a generator


class Watched:
    """A generator whose progress and closing a test can see from outside."""

    def __init__(self) -> None:
        self.computed = 0
        self.closed = threading.Event()

    def sync(self, n: int = 1000) -> Iterator[int]:
        try:
            for i in range(n):
                self.computed += 1
                yield i
                time.sleep(0.05)
        finally:
            self.closed.set()

    async def asynchronous(self, n: int = 1000) -> AsyncIterator[int]:
        try:
            for i in range(n):
                self.computed += 1
                yield i
                await asyncio.sleep(0.05)
        finally:
            self.closed.set()


@pytest.fixture
def url(serve):
    return serve("writer", generate, slow, slow_async, breaks, fails_at_once).url


def events(url: str, route: str, body: dict) -> list[tuple[str, str]]:
    with requests.post(f"{url}{route}", json=body, stream=True, timeout=10) as response:
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/event-stream")
        return list(parse_sse(response.iter_content(None)))


def test_sse_delivers_every_item_in_order(url):
    got = events(url, "/generate", {"prompt": "hi", "n": 25})
    assert got == [("message", f"hi {i}") for i in range(25)]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prompt=st.text(st.characters(blacklist_categories=("Cs",)), max_size=40), n=st.integers(0, 30))
def test_any_text_survives_sse_framing_including_line_breaks(url, prompt, n):
    got = events(url, "/generate", {"prompt": prompt, "n": n})
    # SSE carries line breaks as several data lines; a reader joins them with "\n".
    expected = [f"{prompt} {i}".replace("\r\n", "\n").replace("\r", "\n") for i in range(n)]
    assert [data for _, data in got] == expected


def test_ndjson_on_request_one_json_value_per_line(url):
    with requests.post(
        f"{url}/slow_async", json={"n": 3}, headers={"Accept": "application/x-ndjson"}, stream=True, timeout=10
    ) as response:
        assert response.headers["content-type"].startswith("application/x-ndjson")
        assert [json.loads(line) for line in response.iter_lines()] == [{"i": 0}, {"i": 1}, {"i": 2}]


@pytest.mark.parametrize("route", ["/slow", "/slow_async"])
def test_first_item_arrives_before_the_generator_finishes(url, route):
    began = time.perf_counter()
    arrivals = []
    with requests.post(f"{url}{route}", json={}, stream=True, timeout=10) as response:
        for _ in parse_sse(response.iter_content(None)):
            arrivals.append(time.perf_counter() - began)
    assert len(arrivals) == SLOW_ITEMS
    whole = (SLOW_ITEMS - 1) * GAP_S
    assert arrivals[0] < GAP_S, arrivals  # not held back until the generator ends
    assert arrivals[-1] >= whole * 0.9
    assert all(later - earlier > GAP_S / 2 for earlier, later in itertools.pairwise(arrivals))


def test_exception_mid_stream_ends_with_an_error_event_and_the_server_lives(url):
    got = events(url, "/breaks", {"n": 3})
    assert got[:3] == [("message", "0"), ("message", "1"), ("message", "2")]
    event, data = got[3]
    assert event == "error"
    assert json.loads(data) == {"error": "breaks() raised RuntimeError: ran out of model"}
    assert len(got) == 4
    assert [d for _, d in events(url, "/generate", {"prompt": "still", "n": 2})] == ["still 0", "still 1"]


def test_exception_before_the_first_item_is_a_plain_500(url):
    response = requests.post(f"{url}/fails_at_once", json={"n": 7}, timeout=10)
    assert response.status_code == 500
    assert response.json() == {"error": "fails_at_once() raised ValueError: refuse 7"}


def test_bad_input_is_refused_before_streaming_naming_the_field(url):
    response = requests.post(f"{url}/generate", json={"prompt": "x", "n": "many"}, timeout=10)
    assert response.status_code == 400
    assert response.json()["field"] == "n"
    assert requests.get(f"{url}/generate", timeout=10).status_code == 405


@pytest.mark.parametrize("kind", ["sync", "asynchronous"])
def test_client_disconnect_closes_the_generator_and_stops_computing(serve, kind):
    watched = Watched()
    handler = getattr(watched, kind)
    handler.__func__.__name__ = "watched"
    url = serve("watch", handler).url
    with httpx.Client(timeout=10) as client, client.stream("POST", f"{url}/watched", json={}) as response:
        seen = [data for _, data in zip(range(3), parse_sse(response.iter_raw()), strict=False)]
    assert seen == [("message", "0"), ("message", "1"), ("message", "2")]
    assert watched.closed.wait(5), "the generator's finally did not run after the client left"
    computed = watched.computed
    time.sleep(0.5)  # ten more items' worth of time
    assert watched.computed == computed
    assert computed <= 5


def test_client_disconnect_closes_an_async_generator_that_never_awaits(serve):
    computed: list[int] = []
    closed = threading.Event()

    async def blocking(n: int = 50) -> AsyncIterator[int]:
        try:
            for i in range(n):
                time.sleep(0.1)  # model work that holds the event loop: no await between items
                computed.append(i)
                yield i
        finally:
            closed.set()

    url = serve("blocking", blocking).url
    with httpx.Client(timeout=10) as client, client.stream("POST", f"{url}/blocking", json={}) as response:
        assert next(parse_sse(response.iter_raw())) == ("message", "0")
    assert closed.wait(5), "the generator's finally did not run after the client left"
    assert len(computed) <= 4, computed


@pytest.mark.parametrize("route", ["/slow", "/slow_async"])
def test_concurrent_streams_each_get_their_own_items_side_by_side(url, route):
    streams, items = 16, 3  # more sync streams than the event loop's default thread pool holds

    def read(_: int) -> tuple[list[str], float, float]:
        began = time.perf_counter()
        got = events(url, route, {"n": items})
        return [d for _, d in got], began, time.perf_counter()

    with ThreadPoolExecutor(streams) as pool:
        results = list(pool.map(read, range(streams)))
    for got, _, _ in results:
        assert [json.loads(i) for i in got] in ([0, 1, 2], [{"i": 0}, {"i": 1}, {"i": 2}])
    one_stream = (items - 1) * GAP_S
    span = max(end for *_, end in results) - min(start for _, start, _ in results)
    assert span < 2 * one_stream, span  # side by side, not in waves


def test_schema_and_openapi_describe_streams_as_bentoml_does(url):
    schema = requests.get(f"{url}/schema.json", timeout=10).json()
    route = next(r for r in schema["routes"] if r["name"] == "generate")
    assert route["output"] == {"type": "string", "is_stream": True, "media_type": "text/event-stream"}
    assert route["is_task"] is False
    docs = requests.get(f"{url}/docs.json", timeout=10).json()
    content = docs["paths"]["/slow"]["post"]["responses"]["200"]["content"]
    event = content["text/event-stream"]["schema"]  # OpenAPI 3.1: the schema of one event
    assert event["properties"]["data"]["contentSchema"] == {"type": "integer"}
    assert event["properties"]["event"]["enum"] == ["message", "error"]
    assert content["application/x-ndjson"]["schema"] == {"type": "integer"}
    assert "application/x-ndjson" in content


def test_sse_event_framing_splits_lines_and_names_events():
    assert sse_event("a\r\nb\rc\nd") == b"data: a\ndata: b\ndata: c\ndata: d\n\n"
    assert sse_event("{}", event="error", event_id=3) == b"event: error\nid: 3\ndata: {}\n\n"


class Unencodable:
    """Generators that yield ``good`` items, then one with no JSON form; the test sees their finally run."""

    def __init__(self, bad: object) -> None:
        self.bad = bad
        self.closed = threading.Event()

    def sync(self, good: int) -> Iterator[Any]:
        try:
            yield from range(good)
            yield self.bad
            yield good
        finally:
            self.closed.set()

    async def asynchronous(self, good: int) -> AsyncIterator[Any]:
        try:
            for i in range(good):
                yield i
            yield self.bad
            yield good
        finally:
            self.closed.set()


@pytest.mark.parametrize("kind", ["sync", "asynchronous"])
@pytest.mark.parametrize("bad", [object(), {"nested": [object()]}], ids=["object", "nested object"])  # bytes are base64
def test_an_item_without_json_form_ends_the_stream_like_an_exception(serve, kind, bad):
    source = Unencodable(bad)
    handler = getattr(source, kind)
    handler.__func__.__name__ = "emits"
    url = serve("encode", handler).url
    prefix = "emits() yielded an item that cannot be encoded: "

    response = requests.post(f"{url}/emits", json={"good": 0}, timeout=10)  # the first item: a plain 500
    assert response.status_code == 500
    assert response.json()["error"].startswith(prefix)
    assert source.closed.wait(5)

    source.closed.clear()
    got = events(url, "/emits", {"good": 2})
    assert got[:2] == [("message", "0"), ("message", "1")]
    assert [event for event, _ in got[2:]] == ["error"]
    assert json.loads(got[2][1])["error"].startswith(prefix)
    assert source.closed.wait(5)

    source.closed.clear()
    with requests.post(
        f"{url}/emits", json={"good": 2}, headers={"Accept": "application/x-ndjson"}, stream=True, timeout=10
    ) as ndjson:
        lines = [json.loads(line) for line in ndjson.iter_lines()]
    assert lines[:2] == [0, 1]
    assert len(lines) == 3 and lines[2]["error"].startswith(prefix)
    assert source.closed.wait(5)
