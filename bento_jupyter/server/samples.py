"""A small bounded sample of the requests an API answered and what it answered: the evidence a build
replays against the new bento to prove it answers as the kernel did.

Only answers the service actually gave are kept: nothing here runs a handler again, so a build causes no
side effect in the kernel. A stream's answer is the list of its items; an API's ``examples=`` are asked
once when the service starts (:func:`answer_examples`), so they have the kernel's own answers too.
"""

from __future__ import annotations

import collections
import json
from dataclasses import dataclass
from typing import Any

from bento_jupyter.errors import InvalidInput
from bento_jupyter.server import open_inference_binary as binary_data

DEFAULT_SAMPLES = 16
# An API's kept exchanges together (requests and answers) stay within this, so a large request (an image, a
# long document) is still kept and replayed, and a bento's verify/ stays a few such per API. One larger
# exchange is not kept.
MAX_SAMPLE_BYTES = 8 * 1024 * 1024
MAX_SAMPLE_MIB = MAX_SAMPLE_BYTES // (1024 * 1024)
STREAM_ITEMS = "application/x-bento-items"  # a stream's answer, kept as the JSON list of its items


@dataclass(frozen=True)
class V2Route:
    """Where an exchange went when not to the API's own route: its v2 infer path, and for a body in Triton's
    binary framing the length of its JSON header (request and answer; None: all JSON)."""

    path: str
    request_header: int | None = None
    response_header: int | None = None


@dataclass(frozen=True)
class Exchange:
    """One answered request: its body, and the body and media type of the 200 answer; ``v2`` when it was a v2
    infer (its own route's exchanges, tasks' included, have None)."""

    request: bytes
    response: bytes
    media_type: str
    v2: V2Route | None = None


class SampleLog:
    """The latest ``size`` exchanges of one API, whichever route answered them, together at most ``budget``
    bytes: a new one pushes out the oldest until both hold (appending copies nothing)."""

    def __init__(self, size: int = DEFAULT_SAMPLES, budget: int = MAX_SAMPLE_BYTES) -> None:
        self._size = size
        self._budget = budget
        self._kept: collections.deque[tuple[bytes, bytes, bytes, V2Route | None]] = collections.deque()
        self._bytes = 0

    @property
    def keeping(self) -> bool:
        """Whether exchanges are kept at all (not for an API with ``verify=False``)."""
        return self._size > 0

    def record(self, request: bytes, response: bytes, media_type: bytes, v2: V2Route | None = None) -> None:
        size = len(request) + len(response)
        if not self._size or size > self._budget:
            return
        self._kept.append((request, response, media_type, v2))
        self._bytes += size
        while len(self._kept) > self._size or self._bytes > self._budget:
            old_request, old_response, _, _ = self._kept.popleft()
            self._bytes -= len(old_request) + len(old_response)

    def record_stream(self, request: bytes, items: list[bytes] | None) -> None:
        """A stream that ended normally, its items as JSON (``None``: too large to keep)."""
        if items is not None:
            self.record(request, b"[" + b",".join(items) + b"]", STREAM_ITEMS.encode())

    def exchanges(self) -> list[Exchange]:
        return [Exchange(bytes(q), bytes(a), m.decode(), v2) for q, a, m, v2 in list(self._kept)]


_NOT_JSON = object()


def read_json(data: bytes) -> Any:
    """A body as the kernel's server took it: bare NaN and ±Infinity tokens and integers of any size are kept
    (orjson and strict parsers refuse them); ValueError when it is no JSON."""
    return json.loads(data)


def _json_or_none(data: bytes) -> Any:
    try:
        return read_json(data) if data else {}
    except ValueError:
        return _NOT_JSON


def _answer(body: bytes, media_type: str) -> Any:
    if media_type.startswith(("application/json", STREAM_ITEMS)):
        return _json_or_none(body)
    return body.decode(errors="replace")


def _key(request: Any) -> str:
    return json.dumps(request, sort_keys=True)


def collect(endpoints: dict[str, Any]) -> dict[str, Any]:
    """The samples document a build stores: per API, its verification settings and the exchanges it answered.

    ``endpoints`` are the running service's (route -> Endpoint). Per distinct request the latest answer is
    kept (the state the service answered with last); a request equal to one of the API's ``examples`` is
    marked ``example``. Nothing is asked of the service: the answers are the ones it gave.
    """
    apis: dict[str, Any] = {}
    for route, endpoint in endpoints.items():
        config = endpoint.method.config
        examples = {_key(example) for example in config.examples}
        chosen: dict[str, dict[str, Any]] = {}
        for exchange in endpoint.samples.exchanges():
            if exchange.v2 is not None:
                converted = _v2_as_json(exchange, exchange.v2)
                if converted is None:
                    continue
                exchange = converted
            request, response = _json_or_none(exchange.request), _answer(exchange.response, exchange.media_type)
            if request is _NOT_JSON or response is _NOT_JSON:
                continue
            path = exchange.v2.path if exchange.v2 is not None else None
            key = _key([path, request]) if path else _key(request)
            chosen.pop(key, None)  # the latest answer to a request stands for it, in the order answered
            source = "example" if key in examples else "served"
            media_type = exchange.media_type
            chosen[key] = {
                "source": source,
                "request": request,
                "body": exchange.request.decode(),  # as sent: a replay sends these very bytes (answered: UTF-8)
                "response": response,
                "media_type": media_type,
            } | ({"path": path} if path else {})
        apis[endpoint.method.name] = {
            "route": route,
            "verify": config.verify,
            "tolerance": config.tolerance,
            "stream": bool(getattr(endpoint.method, "is_stream", False)),
            "exchanges": list(chosen.values()) if config.verify else [],
        }
    return {"apis": apis}


def _v2_as_json(exchange: Exchange, v2: V2Route) -> Exchange | None:
    """A v2 exchange with its binary tensors written as JSON data, as the v2 JSON route takes and answers them,
    so a replay sends JSON and compares numbers within the API's tolerance."""
    try:
        request = binary_data.as_json(exchange.request, v2.request_header)
        response = binary_data.as_json(exchange.response, v2.response_header)
    except (ValueError, InvalidInput):
        return None  # not v2 JSON in any form: left out, as any body that is no JSON
    return Exchange(request, response, "application/json", V2Route(v2.path))


def answer_examples(endpoints: dict[str, Any], url: str, timeout: float = 60.0) -> list[str]:
    """Ask each API's ``examples=`` of the service just started at ``url``, once, so their answers are the
    kernel's own (kept like any served request); one line per example the kernel did not answer with 200."""
    import requests

    problems = []
    with requests.Session() as http:
        for route, endpoint in endpoints.items():
            for example in endpoint.method.config.examples:
                answer = http.post(f"{url}{route}", json=example, timeout=timeout)
                if answer.status_code != 200:
                    problems.append(
                        f"{endpoint.method.name} example {json.dumps(example)[:120]}: the kernel answered"
                        f" {answer.status_code} {answer.text[:200]}"
                    )
    return problems
