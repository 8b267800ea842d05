"""Half-open connections cannot starve a registry: requests still answer, and stalled heads are closed."""

from __future__ import annotations

import socket
import time

import pytest
import requests

from tests.registry.conftest import RegistryProcess

pytestmark = pytest.mark.integration
HALF_OPEN = 1000


def test_a_thousand_half_sent_heads_do_not_stop_normal_requests_and_are_closed(tmp_path):
    registry = RegistryProcess(
        f"sqlite:///{tmp_path / 'r.db'}",
        f"file://{tmp_path / 'blobs'}",
        tmp_path / "home",
        extra=["--head-timeout", "3"],
    ).start()
    port = int(registry.url.rsplit(":", 1)[1])
    stalled: list[socket.socket] = []
    try:
        for _ in range(HALF_OPEN):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # never finished
            stalled.append(sock)
        started = time.monotonic()
        for _ in range(20):
            answer = requests.get(f"{registry.url}/api/v1/bentos", headers=registry.headers("read"), timeout=10)
            assert answer.status_code == 200
        assert time.monotonic() - started < 10
        deadline = time.monotonic() + 15
        closed = 0
        for sock in stalled:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                closed += sock.recv(1) == b""
            except ConnectionResetError:
                closed += 1
            except TimeoutError:
                pass
        assert closed == HALF_OPEN
    finally:
        for sock in stalled:
            sock.close()
        registry.stop()
