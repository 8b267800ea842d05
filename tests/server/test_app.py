"""A real uvicorn server on 127.0.0.1, driven by real HTTP clients."""

from __future__ import annotations

import asyncio
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests
from pydantic import BaseModel

from bento_jupyter import api
from bento_jupyter.errors import ServerStartError
from bento_jupyter.server.runner import ThreadedServer
from bento_jupyter.service.definition import ServiceDefinition
from bento_jupyter.sockets import bind_socket


class Point(BaseModel):
    x: float
    y: float


@api(batchable=True, max_batch_size=16, max_latency_ms=1000)
def predict(inputs: np.ndarray) -> np.ndarray:
    """Doubles every row, taking a few milliseconds like a model would: concurrent callers queue up."""
    time.sleep(0.005)
    return inputs * 2


def describe(text: str) -> dict:
    return {"length": len(text)}


def norm(p: Point) -> float:
    return (p.x**2 + p.y**2) ** 0.5


def greet(name: str = "world") -> str:
    return f"hello {name}"


async def slow_echo(value: int) -> int:
    await asyncio.sleep(0.01)
    return value


def explode(value: int) -> int:
    raise RuntimeError(f"cannot handle {value}")


@pytest.fixture
def url(serve):
    return serve("demo", predict, describe, norm, greet, slow_echo, explode, max_body_bytes=4096).url


def test_json_object_keyed_by_parameter_name_gets_typed_answers(url):
    assert requests.post(f"{url}/predict", json={"inputs": [[1, 2]]}, timeout=5).json() == [[2, 4]]
    assert requests.post(f"{url}/describe", json={"text": "abc"}, timeout=5).json() == {"length": 3}
    assert requests.post(f"{url}/norm", json={"p": {"x": 3, "y": 4}}, timeout=5).json() == 5.0
    assert requests.post(f"{url}/slow_echo", json={"value": 7}, timeout=5).json() == 7


def test_str_results_are_plain_text_and_defaults_apply(url):
    answer = requests.post(f"{url}/greet", json={}, timeout=5)
    assert answer.headers["content-type"].startswith("text/plain")
    assert answer.text == "hello world"


def test_curl_style_form_content_type_with_json_body_is_accepted(url):
    answer = requests.post(
        f"{url}/predict",
        data='{"inputs": [[1,2,3,4]]}',
        headers={"content-type": "application/x-www-form-urlencoded"},
        timeout=5,
    )
    assert answer.status_code == 200 and answer.json() == [[2, 4, 6, 8]]


@pytest.mark.parametrize(
    ("route", "body", "field"),
    [
        ("/describe", {"text": 5}, "text"),
        ("/describe", {}, "text"),
        ("/norm", {"p": {"x": "far", "y": 1}}, "p.x"),
        ("/predict", {"inputs": [[1, 2], [3]]}, "inputs"),
        ("/predict", {"wrong": 1}, "wrong"),
    ],
)
def test_invalid_input_is_400_naming_the_field(url, route, body, field):
    answer = requests.post(f"{url}{route}", json=body, timeout=5)
    assert answer.status_code == 400
    assert answer.json()["field"] == field


def test_malformed_json_is_400(url):
    answer = requests.post(f"{url}/describe", data=b"{nope", headers={"content-type": "application/json"})
    assert answer.status_code == 400 and "not valid JSON" in answer.json()["error"]


def test_handler_exception_is_500_with_its_message_and_the_server_carries_on(url):
    answer = requests.post(f"{url}/explode", json={"value": 3}, timeout=5)
    assert answer.status_code == 500
    assert "RuntimeError: cannot handle 3" in answer.json()["error"]
    assert requests.post(f"{url}/describe", json={"text": "ok"}, timeout=5).status_code == 200


def test_wrong_content_type_is_415_and_oversized_body_is_413(url):
    wrong = requests.post(f"{url}/describe", data="text", headers={"content-type": "text/plain"}, timeout=5)
    assert wrong.status_code == 415
    big = requests.post(f"{url}/describe", json={"text": "x" * 10_000}, timeout=5)
    assert big.status_code == 413


def test_get_on_an_api_is_405_and_unknown_paths_404(url):
    assert requests.get(f"{url}/predict", timeout=5).status_code == 405
    assert requests.get(f"{url}/nowhere", timeout=5).status_code == 404


def test_probes_schema_openapi_and_offline_docs(url):
    for probe in ("/readyz", "/livez", "/healthz"):
        assert requests.get(f"{url}{probe}", timeout=5).status_code == 200
    schema = requests.get(f"{url}/schema.json", timeout=5).json()
    routes = {r["name"]: r for r in schema["routes"]}
    assert routes["predict"]["batchable"] is True
    assert routes["predict"]["input"]["properties"]["inputs"]["type"] == "tensor"
    assert routes["predict"]["output"] == {"type": "tensor", "format": "numpy-array"}
    openapi = requests.get(f"{url}/docs.json", timeout=5).json()
    assert openapi["openapi"].startswith("3.") and "/predict" in openapi["paths"]
    page = requests.get(f"{url}/", timeout=5).text
    assert "static_docs/swagger-ui-bundle.js" in page and "http" not in page.split("<body>")[1]
    assert requests.get(f"{url}/static_docs/swagger-ui-bundle.js", timeout=5).status_code == 200


def test_concurrent_requests_are_batched_and_counted_in_metrics(url):
    rows = np.arange(64, dtype=float).reshape(32, 2)

    def call(row):
        return requests.post(f"{url}/predict", json={"inputs": [row.tolist()]}, timeout=10).json()

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(call, rows))
    assert answers == [[(row * 2).tolist()] for row in rows]
    text = requests.get(f"{url}/metrics", timeout=5).text
    count = sum_ = None
    for line in text.splitlines():
        if line.startswith("bentoml_service_adaptive_batch_size_count"):
            count = float(line.split()[-1])
        if line.startswith("bentoml_service_adaptive_batch_size_sum"):
            sum_ = float(line.split()[-1])
    assert sum_ == 32 and count is not None and count < 32
    assert 'bentoml_service_request_total{endpoint="/predict",http_response_code="200"' in text
    assert "bentoml_service_request_in_progress" in text
    assert "bentoml_service_request_duration_seconds_bucket" in text


def test_endpoints_count_the_servers_requests_in_progress(serve):
    """The connection names the server's requests in progress to the app, so a lone request can skip the
    batching turn; a hot-swapped endpoint gets it too."""
    server = serve("counted", predict)
    assert requests.post(f"{server.url}/predict", json={"inputs": [[1.0, 2.0]]}, timeout=10).json() == [[2.0, 4.0]]
    in_flight = server.app.endpoints["/predict"].in_flight
    assert in_flight is not None
    deadline = time.monotonic() + 5
    while len(in_flight) and time.monotonic() < deadline:  # the answered request's task is finishing
        time.sleep(0.01)
    assert len(in_flight) == 0
    old = server.app.swap(ServiceDefinition.from_functions("counted", [predict]))
    server.submit(server.app.retire(old))
    assert server.app.endpoints["/predict"].in_flight is in_flight


def test_explicit_port_in_use_is_a_clear_error_and_no_port_scans():
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        with pytest.raises(ServerStartError, match=f"port {port} on 127.0.0.1 is already in use"):
            bind_socket("127.0.0.1", port)
        sock = bind_socket("127.0.0.1", None)
        assert sock.getsockname()[1] != port
        sock.close()
    finally:
        taken.close()


def test_server_binds_loopback_by_default(serve):
    server: ThreadedServer = serve("loop", describe)
    assert server.host == "127.0.0.1" and server.url.startswith("http://127.0.0.1:")


@api(batchable=True, max_batch_size=4, max_latency_ms=5000)
def sometimes_slow(inputs: np.ndarray) -> np.ndarray:
    if (inputs < 0).any():
        time.sleep(1.5)
    return inputs


def test_a_slow_call_leaves_probes_and_other_apis_answering(serve):
    url = serve("slowpoke", sometimes_slow, describe).url
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(requests.post, f"{url}/sometimes_slow", json={"inputs": [[-1.0]]}, timeout=10)
        time.sleep(0.2)  # the slow batch is running now
        began = time.monotonic()
        assert requests.get(f"{url}/readyz", timeout=1).status_code == 200
        assert requests.post(f"{url}/describe", json={"text": "hi"}, timeout=1).json() == {"length": 2}
        assert time.monotonic() - began < 1.0
        assert slow.result().json() == [[-1.0]]


@api(batchable=True, max_batch_size=8)
def own_loop(inputs: np.ndarray) -> np.ndarray:
    """Starts its own event loop, as code that wraps an async client does: fine on any thread but the server's."""
    return asyncio.run(asyncio.sleep(0, inputs + 1))


def own_loop_direct(n: int) -> int:
    return asyncio.run(asyncio.sleep(0, n + 1))


@pytest.mark.parametrize("clients", [1, 24])
def test_a_handler_that_runs_its_own_event_loop_answers_alike_at_any_concurrency(serve, clients):
    url = serve("ownloop", own_loop, own_loop_direct).url

    def call(i):
        batched = requests.post(f"{url}/own_loop", json={"inputs": [[float(i)]]}, timeout=10)
        direct = requests.post(f"{url}/own_loop_direct", json={"n": i}, timeout=10)
        return batched.status_code, batched.json(), direct.status_code, direct.json()

    with ThreadPoolExecutor(clients) as pool:
        answers = list(pool.map(call, range(48)))
    assert answers == [(200, [[i + 1.0]], 200, i + 1) for i in range(48)]
