"""The near-free 503: whole keep-alive requests to an overloaded API are refused from their bytes, and every
other shape of request still gets the same answer through the ordinary path."""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import orjson
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bento_jupyter import api
from bento_jupyter.server.refusal import whole_post
from bento_jupyter.uvicorn_config import ConnectionLimits
from tests.server.overload_helpers import metric, wait_for

BODY = orjson.dumps({"inputs": [[1.0, 2.0]]})


def request_bytes(body: bytes = BODY, path: str = "/predict", extra: str = "") -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return (head + extra + "\r\n").encode() + body


def read_answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One whole HTTP/1.1 response with a content-length: status, headers (lowercase), body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before an answer")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict((k.lower(), v.strip()) for k, v in (line.split(":", 1) for line in lines[1:]))
    length = int(headers["content-length"])
    while len(rest) < length:
        rest += sock.recv(65536)
    return int(lines[0].split()[1]), headers, rest[:length]


@pytest.fixture
def overloaded(serve):
    """A service whose model is stuck on its first call with one request queued: every new request is refused."""
    gate, entered = threading.Event(), threading.Event()

    @api(batchable=True, max_batch_size=8, max_latency_ms=50, max_queue_size=1)
    def predict(inputs: np.ndarray) -> np.ndarray:
        entered.set()
        gate.wait(30)
        return inputs.sum(axis=1)

    server = serve("refusing", predict)
    pool = ThreadPoolExecutor(2)
    # One request at a time: sent together, the second could find the first still queued and be refused.
    held = [pool.submit(requests.post, f"{server.url}/predict", data=BODY, timeout=30)]
    assert entered.wait(10)
    held.append(pool.submit(requests.post, f"{server.url}/predict", data=BODY, timeout=30))
    wait_for(lambda: metric(server.url, "bentoml_service_request_in_progress") == 2)
    host, port = server.url.removeprefix("http://").split(":")
    yield server, (host, int(port))
    gate.set()
    assert [h.result().status_code for h in held] == [200, 200]
    pool.shutdown()


def test_refusals_keep_the_connection_and_are_counted(overloaded):
    server, address = overloaded
    before = metric(server.url, "bentoml_service_request_total", http_response_code="503")
    with socket.create_connection(address, timeout=10) as sock:
        for _ in range(20):
            sock.sendall(request_bytes())
            status, headers, body = read_answer(sock)
            assert status == 503 and headers["retry-after"].isdigit() and "date" in headers
            assert "overloaded" in orjson.loads(body)["error"]
    assert metric(server.url, "bentoml_service_request_total", http_response_code="503") == before + 20


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    extra=st.sampled_from(["", "Connection: keep-alive\r\n", "X-Trace: 1\r\n", "Expect: 100-continue\r\n"]),
    split=st.integers(min_value=0, max_value=len(request_bytes()) - 1),
    requests_on_connection=st.integers(min_value=1, max_value=3),
)
def test_every_shape_of_request_gets_the_same_refusal(overloaded, extra, split, requests_on_connection):
    """Split across reads or with headers the fast path leaves alone: a 503 each, the connection kept."""
    _, address = overloaded
    wire = request_bytes(extra=extra)
    with socket.create_connection(address, timeout=10) as sock:
        for _ in range(requests_on_connection):
            if split:
                sock.sendall(wire[:split])
                sock.sendall(wire[split:])
            else:
                sock.sendall(wire)
            assert read_answer(sock)[0] == 503


def read_answers(sock: socket.socket, count: int) -> list[int]:
    """The statuses of ``count`` whole responses with a content-length, however the reads split them."""
    data, statuses = b"", []
    while len(statuses) < count:
        head_end = data.find(b"\r\n\r\n")
        if head_end >= 0:
            head = data[:head_end].decode().lower()
            length = int(head.split("content-length:")[1].split("\r\n")[0])
            if len(data) >= head_end + 4 + length:
                statuses.append(int(head.split()[1]))
                data = data[head_end + 4 + length :]
                continue
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {len(statuses)} of {count} answers")
        data += chunk
    return statuses


@pytest.mark.parametrize("pipelined", [2, 3])
@pytest.mark.parametrize("extra", ["", "Connection: keep-alive\r\n"])
def test_pipelined_requests_each_get_their_refusal(overloaded, pipelined, extra):
    """Requests sent back to back in one write each get a 503 (the ordinary path answers them in order); the
    previous session's 'lost second answer' was its reader dropping bytes past the first response."""
    _, address = overloaded
    for _ in range(10):
        with socket.create_connection(address, timeout=10) as sock:
            sock.sendall(request_bytes(extra=extra) * pipelined)
            assert read_answers(sock, pipelined) == [503] * pipelined


def test_connection_close_is_honoured_on_a_refusal(overloaded):
    _, address = overloaded
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(request_bytes(extra="Connection: close\r\n"))
        status, _, _ = read_answer(sock)
        assert status == 503
        assert sock.recv(1) == b""  # closed after the answer


@pytest.mark.parametrize(
    ("wire", "path"),
    [
        (request_bytes(), b"/predict"),
        (request_bytes(path="/predict?x=1"), None),
        (request_bytes(extra="Transfer-Encoding: chunked\r\n"), None),
        (request_bytes()[:-1], None),  # body incomplete
        (request_bytes() + b"P", None),  # more than one request
        (request_bytes().replace(b"HTTP/1.1", b"HTTP/1.0"), None),
        (b"GET /predict HTTP/1.1\r\nHost: x\r\n\r\n", None),
    ],
)
def test_only_one_whole_plain_post_takes_the_fast_path(wire, path):
    assert whole_post(wire) == path


def test_a_connection_refused_again_and_again_stays_open_and_idles_out_like_any_other(overloaded):
    """Fast refusals keep a busy connection alive past the keep-alive timeout; once idle, it is closed."""
    _, address = overloaded
    keep_alive_s = ConnectionLimits().keep_alive_s
    with socket.create_connection(address, timeout=keep_alive_s + 5) as sock:
        began = idle_from = time.monotonic()
        while idle_from - began < keep_alive_s + 1:
            time.sleep(0.5)
            sock.sendall(request_bytes())
            assert read_answer(sock)[0] == 503
            idle_from = time.monotonic()
        assert sock.recv(1) == b""  # closed by the server once idle for the keep-alive timeout
        assert keep_alive_s - 0.5 < time.monotonic() - idle_from < keep_alive_s + 3
