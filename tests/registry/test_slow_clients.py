"""Half-open connections cannot starve a registry: requests still answer, and stalled heads are closed."""

from __future__ import annotations

import socket
import time

import pytest
import requests

from bento_jupyter.uvicorn_config import raise_file_limit
from tests.registry.conftest import RegistryProcess
from tests.stalled_clients import stalled_connections

pytestmark = pytest.mark.integration
HALF_OPEN = 1000
HALF_HEALTH_HEAD = b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-Slow: "  # never finished


def test_a_thousand_half_sent_heads_do_not_stop_normal_requests_and_are_closed(tmp_path):
    registry = RegistryProcess(
        f"sqlite:///{tmp_path / 'r.db'}",
        f"file://{tmp_path / 'blobs'}",
        tmp_path / "home",
        extra=["--head-timeout", "3"],
    ).start()
    stalled: list[socket.socket] = []
    try:
        stalled += stalled_connections(registry.url, HALF_OPEN, HALF_HEALTH_HEAD)
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


class LowFileLimit(RegistryProcess):
    """A registry started under ``ulimit -n 1024`` (soft and hard)."""

    def command(self, *args: str) -> list[str]:
        return ["prlimit", "--nofile=1024", "--", *super().command(*args)]


def test_under_a_low_open_file_limit_the_connection_limit_is_lowered_and_answers_503_not_errors(tmp_path):
    raise_file_limit(4096)  # this test's own 1,500 sockets
    registry = LowFileLimit(
        f"sqlite:///{tmp_path / 'r.db'}",
        f"file://{tmp_path / 'blobs'}",
        tmp_path / "home",
        extra=["--head-timeout", "3"],
    ).start()
    stalled: list[socket.socket] = []
    try:
        assert any("lowered to 768" in line for line in registry.log)
        stalled += stalled_connections(registry.url, 1500, HALF_HEALTH_HEAD)
        for _ in range(10):  # every descriptor the limit allows is held: refused with 503, not a connection error
            answer = requests.get(f"{registry.url}/api/v1/bentos", headers=registry.headers("read"), timeout=10)
            assert answer.status_code == 503 and answer.json()["code"] == "overloaded"
        for sock in stalled:
            sock.close()
        deadline = time.monotonic() + 15
        while requests.get(f"{registry.url}/api/v1/health", timeout=10).status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.2)
    finally:
        for sock in stalled:
            sock.close()
        registry.stop()
