"""Every route of a service that reads a request body obeys the one body limit (``max_body_bytes``), declared
(``Content-Length``) or chunked: the routes are taken from the app's own route list, so a new one cannot slip."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator

import numpy as np
import pytest
import requests
import tritonclient.http as triton

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


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
def test_compressed_bodies_are_read_on_every_route_and_their_decompressed_size_obeys_the_limit(serve, coding):
    """Content-Encoding gzip or deflate (as tritonclient's request_compression_algorithm sends): the body is taken
    as sent, and one that decompresses past the limit (a bomb: ~100 bytes on the wire) is a 413; another coding is a
    415 naming it."""
    server = serve("limits", echo, words, job, max_body_bytes=LIMIT)
    compress = gzip.compress if coding == "gzip" else zlib.compress
    checked = []
    for verb, template in _routes(server.app):
        path = template.replace("{model_name}", "echo").replace("{name}", "echo")
        for kind, small, headers in _bodies(path, 100):
            plain = requests.request(verb, f"{server.url}{path}", data=small, headers=headers, timeout=10)
            if plain.status_code >= 400:  # a route that takes no body
                continue
            headers = {"content-type": "application/json", "content-encoding": coding, **headers}
            packed = requests.request(verb, f"{server.url}{path}", data=compress(small), headers=headers, timeout=10)
            assert (packed.status_code, packed.content) == (plain.status_code, plain.content) or path.endswith(
                "/submit"
            ), (path, kind)  # a task id differs from one submit to the next
            big = next(b for k, b, _ in _bodies(path, 2 * LIMIT) if k == kind)
            if "inference-header-content-length" in headers:
                headers["inference-header-content-length"] = str(big.index(b"}]}") + 3)
            bomb = compress(big)
            assert len(bomb) < LIMIT // 100
            refused = requests.request(verb, f"{server.url}{path}", data=bomb, headers=headers, timeout=10)
            assert refused.status_code == 413 and "decompressed" in refused.json()["error"], (path, kind)
            headers["content-encoding"] = "br"
            other = requests.request(verb, f"{server.url}{path}", data=small, headers=headers, timeout=10)
            assert other.status_code == 415 and "'br'" in other.json()["error"], (path, kind)
            checked.append((path, kind))
    assert {"/echo", "/words", "/job", "/job/submit", "/v2/models/echo/infer"} <= {p for p, _ in checked}


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_tritonclient_request_compression_works(serve, algorithm):
    server = serve("limits", echo, max_body_bytes=LIMIT)
    with triton.InferenceServerClient(url=server.url.removeprefix("http://")) as client:
        tensor = triton.InferInput("text", [1], "BYTES")
        tensor.set_data_from_numpy(np.array([b"hello"], dtype=np.object_))
        answer = client.infer("echo", [tensor], request_compression_algorithm=algorithm)
    assert answer.as_numpy("output").tolist() == [b"hello"]
