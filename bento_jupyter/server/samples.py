"""A small bounded sample of the requests an API answered and what it answered: the evidence a build
replays against the new bento to prove it answers as the kernel did."""

from __future__ import annotations

import collections
import json
from dataclasses import dataclass
from typing import Any

DEFAULT_SAMPLES = 16
MAX_SAMPLE_BYTES = 256 * 1024  # larger exchanges are not kept: verification stays quick and bentos small


@dataclass(frozen=True)
class Exchange:
    """One answered request: its body, and the body and media type of the 200 answer."""

    request: bytes
    response: bytes
    media_type: str


class SampleLog:
    """The latest ``size`` exchanges of one API (appending is O(1) and copies nothing)."""

    def __init__(self, size: int = DEFAULT_SAMPLES) -> None:
        self._kept: collections.deque[tuple[bytes, bytes, bytes]] = collections.deque(maxlen=size)

    def record(self, request: bytes, response: bytes, media_type: bytes) -> None:
        if len(request) + len(response) <= MAX_SAMPLE_BYTES:
            self._kept.append((request, response, media_type))

    def exchanges(self) -> list[Exchange]:
        return [Exchange(bytes(q), bytes(a), m.decode()) for q, a, m in list(self._kept)]


_NOT_JSON = object()


def _json_or_none(data: bytes) -> Any:
    try:
        return json.loads(data) if data else {}
    except ValueError:
        return _NOT_JSON


def _answer(body: bytes, media_type: str) -> Any:
    if media_type.startswith("application/json"):
        return _json_or_none(body)
    return body.decode(errors="replace")


def _requests_to_replay(endpoint: Any) -> dict[str, tuple[str, Any, Any]]:
    """Distinct request bodies: the API's examples, then the sampled requests with the answers they got."""
    chosen: dict[str, tuple[str, Any, Any]] = {}
    for example in endpoint.method.config.examples:
        chosen.setdefault(json.dumps(example, sort_keys=True), ("example", example, _NOT_JSON))
    for exchange in endpoint.samples.exchanges() if hasattr(endpoint, "samples") else []:
        request = _json_or_none(exchange.request)
        if request is not _NOT_JSON:
            served = _answer(exchange.response, exchange.media_type)
            chosen.setdefault(json.dumps(request, sort_keys=True), ("served", request, served))
    return chosen


def collect(endpoints: dict[str, Any], url: str, timeout: float = 60.0) -> dict[str, Any]:
    """The samples document a build stores: per API, its verification settings and exchanges.

    ``endpoints`` are the running service's (route -> Endpoint). Each API's ``examples`` and sampled
    requests are asked again of the running service at ``url``, so the answers stored are the kernel's
    as it stands at build time, the state the bento captures; a sampled answer that has changed since it
    was served (the notebook's state moved on) is kept beside it as ``served_response``. Streaming APIs
    keep no samples.
    """
    import requests

    apis: dict[str, Any] = {}
    with requests.Session() as http:
        for route, endpoint in endpoints.items():
            config = endpoint.method.config
            exchanges = []
            for source, request, served in _requests_to_replay(endpoint).values() if config.verify else []:
                answer = http.post(f"{url}{route}", json=request, timeout=timeout)
                media_type = answer.headers.get("content-type", "application/json")
                response = _answer(answer.content, media_type)
                if answer.status_code != 200 or response is _NOT_JSON:
                    continue  # what the kernel itself refuses proves nothing about the bento
                exchange = {"source": source, "request": request, "response": response, "media_type": media_type}
                if served is not _NOT_JSON and served != response:
                    exchange["served_response"] = served
                exchanges.append(exchange)
            apis[endpoint.method.name] = {
                "route": route,
                "verify": config.verify,
                "tolerance": config.tolerance,
                "exchanges": exchanges,
            }
    return {"apis": apis}
