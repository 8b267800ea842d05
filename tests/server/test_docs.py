"""/docs.json drives Swagger's "Try it out": it must name where the API is and pre-fill a body that works."""

from __future__ import annotations

import numpy as np
import requests
from hypothesis import given
from hypothesis import strategies as st

from bento_jupyter import api
from bento_jupyter.server.schema import server_url


@api(batchable=True, max_batch_size=8)
def predict(inputs: np.ndarray) -> np.ndarray:
    return inputs.sum(axis=1)


@api
def describe(text: str) -> dict:
    return {"length": len(text)}


def body_example(doc: dict, route: str) -> dict | None:
    return doc["paths"][route]["post"]["requestBody"]["content"]["application/json"].get("example")


def test_tensor_inputs_are_arrays_of_numbers_and_a_served_request_becomes_the_example(serve):
    url = serve("docs", predict, describe).url
    before = requests.get(f"{url}/docs.json", timeout=5).json()
    inputs = before["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert inputs["properties"]["inputs"]["type"] == "array"
    assert inputs["properties"]["inputs"]["items"] == {"type": "number"}
    assert body_example(before, "/predict") is None

    rows = [[0.5, -1.0, 2.0, 0.25], [1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 0.0]]
    assert requests.post(f"{url}/predict", json={"inputs": rows}, timeout=5).status_code == 200
    assert requests.post(f"{url}/describe", json={"text": "bento"}, timeout=5).status_code == 200
    after = requests.get(f"{url}/docs.json", timeout=5).json()
    example = body_example(after, "/predict")
    assert example == {"inputs": rows[:1]}  # one item of the batch, as it was sent
    tensor = after["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert tensor["properties"]["inputs"]["items"] == {"type": "array", "items": {"type": "number"}}
    assert body_example(after, "/describe") == {"text": "bento"}
    # The pre-filled bodies are answered.
    for route in ("/predict", "/describe"):
        assert requests.post(f"{url}{route}", json=body_example(after, route), timeout=5).status_code == 200


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
