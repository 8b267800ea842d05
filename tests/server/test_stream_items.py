"""Stream items are checked against the item type the return hint declares (``Iterator[T]``, ``AsyncIterator[T]``,
``Generator[T, ...]``), as /docs.json documents it: a wrong item ends the stream with an error naming its index
and field, the generator is closed, and the server answers the next request. Types and values are generated."""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Generator, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from tests.server.test_streaming import parse_sse


class Point(BaseModel):
    x: int
    y: float


class Shape(BaseModel):
    name: str
    points: list[Point]


CLOSED: dict[str, threading.Event] = {}  # request id -> set by the generator's finally


def _items(run: str, items: list[Any], tensor: bool = False) -> Iterator[Any]:
    try:
        for item in items:
            yield np.asarray(item) if tensor and isinstance(item, list) else item
    finally:
        CLOSED.setdefault(run, threading.Event()).set()


def integers(run: str, items: list[Any]) -> Iterator[int]:
    yield from _items(run, items)


def floats(run: str, items: list[Any]) -> Generator[float, None, None]:
    yield from _items(run, items)


async def texts(run: str, items: list[Any]) -> AsyncIterator[str]:
    for item in _items(run, items):
        yield item


def int_lists(run: str, items: list[Any]) -> Iterator[list[int]]:
    yield from _items(run, items)


def counts(run: str, items: list[Any]) -> Iterator[dict[str, int]]:
    yield from _items(run, items)


async def points(run: str, items: list[Any]) -> AsyncIterator[Point]:
    for item in _items(run, items):
        yield Point(**item) if isinstance(item, dict) and set(item) == {"x", "y"} and _valid_point(item) else item


def shapes(run: str, items: list[Any]) -> Iterator[Shape]:
    yield from _items(run, items)


def tensors(run: str, items: list[Any]) -> Iterator[np.ndarray]:
    yield from _items(run, items, tensor=True)


def _valid_point(item: dict) -> bool:
    return type(item["x"]) is int and type(item["y"]) in (int, float)


@dataclass(frozen=True)
class Bad:
    """An item that does not match, and the field the error must name (None: the item itself)."""

    value: Any
    field: str | None


finite = st.floats(allow_nan=False, allow_infinity=False)
not_int = st.one_of(st.text(max_size=5), st.booleans(), st.none(), finite.filter(lambda f: not f.is_integer()))
not_number = st.one_of(st.text(max_size=5), st.booleans(), st.none(), st.lists(st.integers(), max_size=2))
not_text = st.one_of(st.integers(), st.booleans(), st.none(), finite, st.lists(st.text(max_size=3), max_size=2))
keys = st.text("abcdefgh", min_size=1, max_size=4)
# SSE carries a line break inside an item as several data lines (test_streaming covers that): none here.
text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=10)
good_point = st.fixed_dictionaries({"x": st.integers(), "y": finite})


@st.composite
def bad_point(draw: st.DrawFn, prefix: str = "") -> Bad:
    point = draw(good_point)
    broken = draw(st.sampled_from(["x", "y"]))
    point[broken] = draw(not_int if broken == "x" else not_number)
    return Bad(point, prefix + broken)


@st.composite
def bad_list(draw: st.DrawFn) -> Bad:
    values = draw(st.lists(st.integers(), max_size=4))
    at = draw(st.integers(0, len(values)))
    values.insert(at, draw(not_int))
    return Bad(values, str(at))


@st.composite
def bad_counts(draw: st.DrawFn) -> Bad:
    values = draw(st.dictionaries(keys, st.integers(), max_size=3))
    key = draw(keys)
    values[key] = draw(not_int)
    return Bad(values, key)


@st.composite
def bad_shape(draw: st.DrawFn) -> Bad:
    good = draw(st.lists(good_point, max_size=3))
    at = draw(st.integers(0, len(good)))
    broken = draw(bad_point(prefix=f"points.{at}."))
    return Bad({"name": draw(st.text(max_size=5)), "points": [*good[:at], broken.value, *good[at:]]}, broken.field)


matrix = st.integers(1, 3).flatmap(lambda n: st.lists(st.lists(finite, min_size=n, max_size=n), min_size=1, max_size=3))
# route -> (good items, a bad item)
KINDS: dict[str, tuple[st.SearchStrategy[Any], st.SearchStrategy[Bad]]] = {
    "/integers": (st.integers(), not_int.map(lambda v: Bad(v, None))),
    "/floats": (st.one_of(finite, st.integers(-(2**53), 2**53)), not_number.map(lambda v: Bad(v, None))),
    "/texts": (text, not_text.map(lambda v: Bad(v, None))),
    "/int_lists": (st.lists(st.integers(), max_size=4), bad_list()),
    "/counts": (st.dictionaries(keys, st.integers(), max_size=3), bad_counts()),
    "/points": (good_point, bad_point()),
    "/shapes": (
        st.fixed_dictionaries({"name": st.text(max_size=5), "points": st.lists(good_point, max_size=3)}),
        bad_shape(),
    ),
    "/tensors": (
        matrix,
        st.one_of(finite, st.lists(st.text(max_size=2), min_size=1, max_size=3)).map(lambda v: Bad(v, None)),
    ),
}
ACCEPT = {"sse": "text/event-stream", "ndjson": "application/x-ndjson", "json": "application/json"}


@pytest.fixture(scope="module")
def url():
    from bento_jupyter.server.app import ServiceApp
    from bento_jupyter.server.runner import ThreadedServer
    from bento_jupyter.service.definition import ServiceDefinition

    funcs = [integers, floats, texts, int_lists, counts, points, shapes, tensors]
    server = ThreadedServer(ServiceApp(ServiceDefinition.from_functions("items", funcs)), "127.0.0.1", None)
    server.start()
    yield server.url
    server.stop()


def _as_sent(value: Any) -> Any:
    """An item as the stream carries it (a float that is a whole number may come back as an integer)."""
    return json.loads(json.dumps(value))


@st.composite
def plans(draw: st.DrawFn) -> tuple[str, list[Any], Bad | None, str]:
    route = draw(st.sampled_from(sorted(KINDS)))
    good, bad = KINDS[route]
    items = draw(st.lists(good, max_size=4))
    wrong = draw(st.one_of(st.none(), bad))
    return route, items, wrong, draw(st.sampled_from(sorted(ACCEPT)))


def _read(response: requests.Response, fmt: str, text: bool) -> tuple[list[Any], dict | None]:
    """(the items, the error that ended the stream or None)."""
    if fmt == "json":
        return response.json(), None
    if fmt == "ndjson":
        lines = [json.loads(line) for line in response.iter_lines()]
    else:
        lines = []
        for event, data in parse_sse(response.iter_content(None)):
            if event == "error":
                return lines, json.loads(data)
            lines.append(data if text else json.loads(data))
        return lines, None
    if lines and isinstance(lines[-1], dict) and set(lines[-1]) >= {"error", "item"}:
        return lines[:-1], lines[-1]
    return lines, None


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=plans(), run=st.uuids().map(str))
def test_items_that_do_not_match_the_declared_type_end_the_stream_naming_index_and_field(url, plan, run):
    route, items, wrong, fmt = plan
    sent = items + ([wrong.value] if wrong else [])
    with requests.post(
        f"{url}{route}", json={"run": run, "items": sent}, headers={"Accept": ACCEPT[fmt]}, stream=True, timeout=10
    ) as response:
        if wrong is not None and (not items or fmt == "json"):  # nothing sent yet: a plain 500
            assert response.status_code == 500, response.text
            got, error = [], response.json()
        else:
            assert response.status_code == 200, response.text
            got, error = _read(response, fmt, route == "/texts")
    assert CLOSED.setdefault(run, threading.Event()).wait(5), "the generator was not closed"
    if wrong is None:
        assert error is None
        expected = [_as_sent(i) for i in items]
        if route == "/tensors":
            assert [np.asarray(g, dtype=float).tolist() for g in got] == [np.asarray(i).tolist() for i in expected]
        else:
            assert got == expected
        return
    assert error is not None, got
    assert len(got) == (0 if fmt == "json" else len(items))
    assert error["item"] == len(items)
    assert error.get("field") == wrong.field, error
    assert f"yielded item {len(items)}, which does not match its declared item type" in error["error"]


def test_the_server_keeps_serving_after_an_invalid_item(url):
    response = requests.post(f"{url}/integers", json={"run": "a", "items": [1, "two"]}, stream=True, timeout=10)
    assert [event for event, _ in parse_sse(response.iter_content(None))] == ["message", "error"]
    again = requests.post(f"{url}/integers", json={"run": "b", "items": [3, 4]}, timeout=10)
    assert [data for _, data in parse_sse(iter([again.content]))] == ["3", "4"]


def test_numpy_values_and_non_finite_floats_are_valid_items():
    """NaN and ±Infinity travel as the strings the README documents, numpy scalars as numbers: valid items."""
    from bento_jupyter.server.stream_framing import StreamFormat
    from bento_jupyter.server.streaming import ItemEncoder
    from bento_jupyter.service.definition import APIMethod

    encoder = ItemEncoder(APIMethod.from_function(floats), StreamFormat.NDJSON)
    values = [1.5, float("nan"), float("inf")]
    assert [encoder.item(np.float32(v)) for v in values] == [b"1.5\n", b'"NaN"\n', b'"Infinity"\n']
    assert [encoder.item(v) for v in values] == [b"1.5\n", b'"NaN"\n', b'"Infinity"\n']
    counts_encoder = ItemEncoder(APIMethod.from_function(counts), StreamFormat.NDJSON)
    assert counts_encoder.item({"a": np.int64(3)}) == b'{"a":3}\n'
