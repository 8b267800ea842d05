"""``bento-jupyter serve`` as a subprocess on a free loopback port."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import requests


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_ready(process: subprocess.Popen, port: int, timeout: float, probe: str = "/readyz") -> str:
    """The server's URL once ``probe`` answers 200 on ``port``; fails early if ``process`` exits."""
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited {process.returncode}: {process.stdout.read()}")
        with contextlib.suppress(requests.ConnectionError, requests.Timeout):
            if requests.get(f"{url}{probe}", timeout=1).status_code == 200:
                return url
        if time.monotonic() > deadline:
            raise TimeoutError(f"{process.args} not ready within {timeout}s")
        time.sleep(0.1)


@contextlib.contextmanager
def served_bento(target: str, *extra: str, timeout: float = 60) -> Iterator[str]:
    """Serve ``target`` from a fresh process; yield its URL once ``/readyz`` answers."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bento_jupyter.cli", "serve", target, "--port", str(port), *extra],
        env=os.environ.copy(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield wait_ready(process, port, timeout)
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
