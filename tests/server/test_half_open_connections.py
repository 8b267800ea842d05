"""The in-kernel server keeps answering while a thousand clients each hold half a request head, and closes
them once the head timeout passes (a kept-alive connection stalled in its next head too); a request body that
stops arriving is closed by the same timeout."""

from __future__ import annotations

import socket
import time

import requests

from bento_jupyter.server.running import services
from bento_jupyter.service.definition import ServiceDefinition
from bento_jupyter.uvicorn_config import DEFAULT_HEAD_TIMEOUT_S
from tests.stalled_clients import HALF_HEAD, SLOW_BODY, stalled_connections


def echo(text: str) -> str:
    return text


def assert_closed_cleanly(stalled: list[socket.socket]) -> None:
    """Every socket in ``stalled`` is closed by the server (an orderly close, not a reset) within the head timeout."""
    deadline = time.monotonic() + DEFAULT_HEAD_TIMEOUT_S + 5
    for sock in stalled:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        assert sock.recv(1) == b""  # a timeout here fails the test


def test_a_thousand_half_open_connections_do_not_stop_normal_requests():
    service = services.serve(ServiceDefinition.from_functions("halfopen", [echo]))
    stalled: list[socket.socket] = []
    try:
        stalled += stalled_connections(service.url, 1000, HALF_HEAD.replace(b"/predict", b"/echo"))
        for _ in range(10):
            answer = requests.post(f"{service.url}/echo", json={"text": "hi"}, timeout=10)
            assert answer.status_code == 200 and answer.text == "hi"
        # A kept-alive connection: one whole request answered, then half of the next head.
        sock = socket.create_connection(("127.0.0.1", service.server.port), timeout=10)
        stalled.append(sock)
        body = b'{"text": "hi"}'
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (len(body), body)
        )
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-")
        assert_closed_cleanly(stalled)
    finally:
        for sock in stalled:
            sock.close()
        services.stop("halfopen")


def test_stalled_request_bodies_do_not_stop_normal_requests_and_are_closed():
    service = services.serve(ServiceDefinition.from_functions("slowbody", [echo]))
    stalled: list[socket.socket] = []
    try:
        # a whole head announcing 100,000 body bytes, then one byte, then nothing
        stalled += stalled_connections(service.url, 300, SLOW_BODY.replace(b"/predict", b"/echo"))
        for _ in range(10):
            answer = requests.post(f"{service.url}/echo", json={"text": "hi"}, timeout=10)
            assert answer.status_code == 200 and answer.text == "hi"
        assert_closed_cleanly(stalled)
    finally:
        for sock in stalled:
            sock.close()
        services.stop("slowbody")
