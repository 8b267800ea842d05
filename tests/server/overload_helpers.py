"""Shared by the overload tests: a gated model that counts its rows, raw sockets, and /metrics readings."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import numpy as np
import requests

from bento_jupyter import api


class GatedModel:
    """A batchable API whose calls wait on a gate; every row that reaches the model is counted."""

    def __init__(self, name: str = "predict", max_latency_ms: float = 10_000, seconds_per_call: float = 0.0) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.rows: list[int] = []  # rows per model call, in call order

        def predict(inputs: np.ndarray) -> np.ndarray:
            self.rows.append(len(inputs))
            self.gate.wait(30)
            time.sleep(seconds_per_call)
            return inputs.sum(axis=1)

        predict.__name__ = name
        self.api = api(batchable=True, max_batch_size=64, max_latency_ms=max_latency_ms)(predict)

    def hold(self) -> None:
        self.gate.clear()

    def release(self) -> None:
        self.gate.set()


def raw_request(url: str, path: str, body: bytes, headers: dict[str, str] | None = None) -> socket.socket:
    """A socket that has sent one POST (its answer unread): closing it is a client giving up."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{extra}\r\n"
    )
    sock.sendall(head.encode() + body)
    return sock


def read_status(sock: socket.socket) -> int:
    """The status code of the answer on ``sock`` (read up to its head)."""
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed before an answer")
        data += chunk
    return int(data.split(b" ", 2)[1])


def metric(url: str, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` in ``/metrics`` whose labels include ``labels``."""
    text = requests.get(f"{url}/metrics", timeout=10).text
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"^{re.escape(name)}(?:{{(.*)}})? (\S+)$", line)
        if match and all(f'{k}="{v}"' in (match.group(1) or "") for k, v in labels.items()):
            total += float(match.group(2))
    return total


def wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    """Poll ``condition`` until it holds; fail after ``seconds``."""
    end = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > end:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)
