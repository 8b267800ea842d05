"""A stream's framing follows the request's ``Accept`` with its q-values (RFC 9110, section 12.5.1), checked with
generated headers against a real server: SSE, NDJSON or one JSON array, and 406 when none is acceptable."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.server.test_streaming import parse_sse

# The server's offers in its order of preference, and what each answer's Content-Type then is.
OFFERS = [
    ("text/event-stream", "text/event-stream"),
    ("application/x-ndjson", "application/x-ndjson"),
    ("application/jsonl", "application/x-ndjson"),
    ("application/json-lines", "application/x-ndjson"),
    ("application/json", "application/json"),
]
RANGES = [offer for offer, _ in OFFERS] + [
    "text/*",
    "application/*",
    "*/*",
    "text/html",
    "image/png",
    "application/xml",
]
QUALITIES = [None, 0.0, 0.001, 0.1, 0.5, 0.9, 1.0]


def words(n: int) -> Iterator[str]:
    for i in range(n):
        yield f"w{i}"


@pytest.fixture(scope="module")
def url():
    from bento_jupyter.server.app import ServiceApp
    from bento_jupyter.server.runner import ThreadedServer
    from bento_jupyter.service.definition import ServiceDefinition

    server = ThreadedServer(ServiceApp(ServiceDefinition.from_functions("accept", [words])), "127.0.0.1", None)
    server.start()
    yield server.url
    server.stop()


def _specificity(media_range: str) -> int:
    kind, subtype = media_range.split("/")
    return 0 if kind == "*" else 1 if subtype == "*" else 2


def _matches(media_range: str, offer: str) -> bool:
    kind, subtype = media_range.split("/")
    offer_kind, offer_subtype = offer.split("/")
    return kind == "*" or (kind == offer_kind and subtype in ("*", offer_subtype))


def expected_media_type(entries: list[tuple[str, float | None]]) -> str | None:
    """The RFC's choice: an offer's quality is that of the most specific range matching it; the best quality
    wins, then the more specific range, then the server's order. None: nothing acceptable (406)."""
    if not entries:
        return "text/event-stream"
    best: tuple[float, int] | None = None
    chosen = None
    for offer, sent_as in OFFERS:
        matching = [(_specificity(r), 1.0 if q is None else q) for r, q in entries if _matches(r, offer)]
        if not matching:
            continue
        specificity, quality = max(matching)
        if quality > 0 and (best is None or (quality, specificity) > best):
            best, chosen = (quality, specificity), sent_as
    return chosen


def header(entries: list[tuple[str, float | None]], spaces: bool, upper: bool) -> str:
    parts = []
    for media_range, quality in entries:
        part = media_range.upper() if upper else media_range
        if quality is not None:
            part += f";{' ' if spaces else ''}q={quality:g}"
        parts.append(part)
    return (", " if spaces else ",").join(parts)


accept_entries = st.lists(
    st.tuples(st.sampled_from(RANGES), st.sampled_from(QUALITIES)), max_size=5, unique_by=lambda entry: entry[0]
)


def answered_items(response: requests.Response, media_type: str) -> list[str]:
    if media_type == "application/json":
        return response.json()
    if media_type == "application/x-ndjson":
        return [json.loads(line) for line in response.iter_lines()]
    return [data for _, data in parse_sse(response.iter_content(None))]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries=accept_entries, spaces=st.booleans(), upper=st.booleans())
def test_generated_accept_headers_choose_the_framing_by_quality(url, entries, spaces, upper):
    accept = header(entries, spaces, upper)
    response = requests.post(f"{url}/words", json={"n": 3}, headers={"Accept": accept}, timeout=10)
    expected = expected_media_type(entries)
    if expected is None:
        assert response.status_code == 406, (accept, response.text)
        assert response.json()["field"] == "accept"
        return
    assert response.status_code == 200, (accept, response.text)
    assert response.headers["content-type"].split(";")[0] == expected, accept
    assert answered_items(response, expected) == ["w0", "w1", "w2"]


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("text/event-stream;q=0.2, application/x-ndjson;q=0.8", "application/x-ndjson"),  # q decides, not order
        ("*/*;q=0.5, application/json", "application/json"),
        ("text/event-stream;q=0, */*", "application/x-ndjson"),  # explicitly refused, the wildcard takes the next
        ("text/event-stream; charset=utf-8", "text/event-stream"),
        ("application/json;q=0.9, text/event-stream;q=0.9", "text/event-stream"),  # a tie: the server's order
        ("text/event-stream;q=oops", "text/event-stream"),  # no valid entry: as if absent
    ],
)
def test_accept_examples(url, accept, expected):
    response = requests.post(f"{url}/words", json={"n": 2}, headers={"Accept": accept}, timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == expected


@pytest.mark.parametrize("accept", ["text/html", "*/*;q=0", "text/event-stream;charset=latin-1", "image/*"])
def test_nothing_acceptable_is_a_406_before_the_handler_runs(url, accept):
    response = requests.post(f"{url}/words", json={"n": 2}, headers={"Accept": accept}, timeout=10)
    assert response.status_code == 406
    assert "text/event-stream" in response.json()["error"]


def test_a_whole_json_array_when_asked_and_a_500_naming_the_failure(serve):
    def breaks(n: int, fail: bool) -> Iterator[int]:
        yield from range(n)
        if fail:
            raise RuntimeError("out of tokens")

    base = serve("whole", breaks).url
    whole = requests.post(
        f"{base}/breaks", json={"n": 3, "fail": False}, headers={"Accept": "application/json"}, timeout=10
    )
    assert (whole.status_code, whole.json()) == (200, [0, 1, 2])
    failed = requests.post(
        f"{base}/breaks", json={"n": 3, "fail": True}, headers={"Accept": "application/json"}, timeout=10
    )
    assert failed.status_code == 500
    assert failed.json() == {"error": "breaks() raised RuntimeError: out of tokens"}
