"""Every route of a service that reads a request body obeys the one body limit (``max_body_bytes``), declared
(``Content-Length``) or chunked: the routes are taken from the app's own route list, so a new one cannot slip."""

from __future__ import annotations

import json
from collections.abc import Iterator

import requests

from bento_jupyter import api

LIMIT = 64 * 1024
BODY_METHODS = {"POST", "PUT", "PATCH"}


def echo(text: str) -> str:
    return text


def words(text: str) -> Iterator[str]:
    yield from text.split()


@api(task=True)
def job(text: str) -> int:
    return len(text)


def _routes(app) -> list[tuple[str, str]]:
    """(method, path template) of every route that takes a body: APIs, task routes, the site's own routes."""
    found = [("POST", route) for route in app.endpoints]
    found += [
        (verb, route.api.route + suffix)
        for route in set(app._task_routes.values())
        for suffix, (verb, _) in route._actions.items()
        if verb in BODY_METHODS
    ]
    site = getattr(app._site, "app", app._site)  # the Starlette app, inside its body limit
    for route in site.routes:
        for verb in getattr(route, "methods", None) or ():
            if verb in BODY_METHODS:
                found.append((verb, route.path))
    return found


def _bodies(path: str, size: int) -> Iterator[tuple[str, bytes, dict[str, str]]]:
    """Bodies of about ``size`` bytes that the route at ``path`` would otherwise take."""
    text = "a" * size
    if path.startswith("/v2/"):
        tensor = {"name": "text", "datatype": "BYTES", "shape": [1]}
        yield "v2 JSON", json.dumps({"inputs": [{**tensor, "data": [text]}]}).encode(), {}
        raw = text.encode()
        header = json.dumps({"inputs": [{**tensor, "parameters": {"binary_data_size": len(raw) + 4}}]}).encode()
        body = header + len(raw).to_bytes(4, "little") + raw
        yield "v2 binary", body, {"inference-header-content-length": str(len(header))}
    else:
        yield "JSON", json.dumps({"text": text}).encode(), {}


def _chunked(body: bytes) -> Iterator[bytes]:
    for start in range(0, len(body), 16 * 1024):
        yield body[start : start + 16 * 1024]


def test_every_route_that_reads_a_body_answers_413_over_the_limit(serve):
    server = serve("limits", echo, words, job, max_body_bytes=LIMIT)
    routes = _routes(server.app)
    assert any(path.startswith("/v2/") for _, path in routes) and ("POST", "/job/submit") in routes
    checked, skipped = [], set()
    for verb, template in routes:
        path = template.replace("{model_name}", "echo").replace("{name}", "echo")
        for kind, small, headers in _bodies(path, 100):
            headers = {"content-type": "application/json", **headers}
            within = requests.request(verb, f"{server.url}{path}", data=small, headers=headers, timeout=10)
            if within.status_code >= 400:  # a route that takes no body (cancel and retry read a query's task id)
                skipped.add(path)
                continue
            big = next(b for k, b, _ in _bodies(path, 2 * LIMIT) if k == kind)
            if "inference-header-content-length" in headers:
                headers["inference-header-content-length"] = str(big.index(b"}]}") + 3)
            declared = requests.request(verb, f"{server.url}{path}", data=big, headers=headers, timeout=10)
            chunked = requests.request(verb, f"{server.url}{path}", data=_chunked(big), headers=headers, timeout=10)
            assert (declared.status_code, chunked.status_code) == (413, 413), (verb, path, kind)
            assert "limit" in declared.json()["error"] and "limit" in chunked.json()["error"]
            checked.append((path, kind))
    assert {"/echo", "/words", "/job", "/job/submit", "/v2/models/echo/infer"} <= {p for p, _ in checked}
    assert ("/v2/models/echo/infer", "v2 binary") in checked
    assert skipped == {"/job/cancel", "/job/retry"}
