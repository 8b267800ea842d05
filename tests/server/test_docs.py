"""/docs.json drives Swagger's "Try it out": it must name where the API is and pre-fill a body that works."""

from __future__ import annotations

import functools
from typing import Annotated

import jsonschema
import numpy as np
import pytest
import requests
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bento_jupyter import DType, api
from bento_jupyter.server.app import ServiceApp
from bento_jupyter.server.runner import ThreadedServer
from bento_jupyter.service.definition import ServiceDefinition
from bento_jupyter.service.schema import server_url


@api(batchable=True, max_batch_size=8)
def predict(inputs: np.ndarray) -> np.ndarray:
    return inputs.sum(axis=1)


@api
def describe(text: str) -> dict:
    return {"length": len(text)}


def body_example(doc: dict, route: str) -> dict | None:
    return doc["paths"][route]["post"]["requestBody"]["content"]["application/json"].get("example")


def tensor_schema(doc: dict, route: str, param: str) -> dict:
    """The request schema of ``param``, with the document around it so that its $refs resolve."""
    body = doc["paths"][route]["post"]["requestBody"]["content"]["application/json"]["schema"]
    return {**body["properties"][param], "components": doc["components"]}


def test_a_served_request_becomes_the_example_and_leaves_the_tensor_schema_as_it_was(serve):
    url = serve("docs", predict, describe).url
    before = requests.get(f"{url}/docs.json", timeout=5).json()
    assert body_example(before, "/predict") is None

    rows = [[0.5, -1.0, 2.0, 0.25], [1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 0.0]]
    assert requests.post(f"{url}/predict", json={"inputs": rows}, timeout=5).status_code == 200
    assert requests.post(f"{url}/describe", json={"text": "bento"}, timeout=5).status_code == 200
    after = requests.get(f"{url}/docs.json", timeout=5).json()
    example = body_example(after, "/predict")
    assert example == {"inputs": rows[:1]}  # one item of the batch, as it was sent
    # What the server accepts does not depend on what it has seen: neither does its document.
    assert tensor_schema(after, "/predict", "inputs") == tensor_schema(before, "/predict", "inputs")
    assert body_example(after, "/describe") == {"text": "bento"}
    # The pre-filled bodies are answered.
    for route in ("/predict", "/describe"):
        assert requests.post(f"{url}{route}", json=body_example(after, route), timeout=5).status_code == 200


def echo(x: np.ndarray) -> np.ndarray:
    return x


@api(batchable=True, max_batch_size=8)
def rows_back(rows: torch.Tensor) -> torch.Tensor:
    return rows


def values(kinds: st.SearchStrategy) -> st.SearchStrategy:
    """JSON values a tensor parameter may be sent, rectangular or not, numbers or not, from 0 to 10 deep."""
    return st.recursive(kinds, lambda inner: st.lists(inner, max_size=3), max_leaves=12) | deep(kinds)


def deep(kinds: st.SearchStrategy) -> st.SearchStrategy:
    """One number (or not) nested 6 to 10 deep: past the documented depth, and up to it."""

    def nest(leaf: object, depth: int) -> object:
        return functools.reduce(lambda value, _: [value], range(depth), leaf)

    return st.builds(nest, kinds, st.integers(6, 10))


def small(x: Annotated[np.ndarray, DType("int8")]) -> np.ndarray:
    return x


def flags(x: Annotated[torch.Tensor, DType("bool")]) -> torch.Tensor:
    return x


PARAMS = {"/echo": "x", "/rows_back": "rows", "/small": "x", "/flags": "x"}  # a declared dtype without a Shape too
NUMBERS = st.integers(-(2**53), 2**53) | st.integers(-130, 130) | st.floats(allow_nan=False, allow_infinity=False)
OTHERS = st.booleans() | st.none() | st.text(max_size=3)


@pytest.fixture(scope="module")
def tensors(request):
    server = ThreadedServer(
        ServiceApp(ServiceDefinition.from_functions("tensors", [echo, rows_back, small, flags])), "127.0.0.1"
    )
    server.start()
    request.addfinalizer(server.stop)
    doc = requests.get(f"{server.url}/docs.json", timeout=5).json()
    return server.url, {route: tensor_schema(doc, route, param) for route, param in PARAMS.items()}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=values(NUMBERS) | values(NUMBERS | OTHERS) | values(st.booleans()), route=st.sampled_from(sorted(PARAMS)))
def test_a_tensor_is_accepted_exactly_when_its_documented_schema_and_shape_allow_it(tensors, value, route):
    """Any depth the document allows is answered; anything it refuses is a 400, and so is a ragged list,
    which JSON Schema cannot refuse (the description says the lists at one depth share a length)."""
    url, schemas = tensors
    documented = jsonschema.Draft202012Validator(schemas[route]).is_valid(value)
    try:
        rectangular = np.asarray(value, dtype=float).ndim >= 1
    except (TypeError, ValueError):
        rectangular = False
    answer = requests.post(f"{url}{route}", json={PARAMS[route]: value}, timeout=10)
    if documented and rectangular:
        assert answer.status_code == 200, (value, answer.text)
        assert np.asarray(answer.json(), dtype=float).shape == np.asarray(value, dtype=float).shape
    else:
        assert answer.status_code == 400, (value, answer.text)


def test_failed_requests_do_not_become_examples(serve):
    url = serve("docs", predict).url
    assert requests.post(f"{url}/predict", json={"inputs": ["a"]}, timeout=5).status_code == 400
    assert body_example(requests.get(f"{url}/docs.json", timeout=5).json(), "/predict") is None


def test_servers_follow_the_proxy_prefix(serve):
    url = serve("docs", describe).url
    assert requests.get(f"{url}/docs.json", timeout=5).json()["servers"] == [{"url": "/"}]
    proxied = requests.get(f"{url}/docs.json", headers={"X-Forwarded-Prefix": "/user/ann/proxy/3000"}, timeout=5)
    assert proxied.json()["servers"] == [{"url": "/user/ann/proxy/3000"}]


@given(st.text(max_size=40))
def test_a_forwarded_prefix_is_a_plain_path_or_ignored(prefix):
    url = server_url(prefix)
    assert url == "/" or (url == prefix.rstrip("/") and url.startswith("/") and "//" not in url and "?" not in url)
