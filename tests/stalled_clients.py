"""Clients that stall a server: raw sockets that send part of a request and then nothing."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlparse

HALF_HEAD = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-"
SLOW_BODY = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"


def stalled_connections(url: str, count: int, sent: bytes = HALF_HEAD) -> list[socket.socket]:
    """``count`` connections to ``url``'s host and port, each sending ``sent`` and then nothing."""
    address = urlparse(url)
    sockets = []
    for _ in range(count):
        sock = socket.create_connection((address.hostname, address.port), timeout=10)
        sock.sendall(sent)
        sockets.append(sock)
    return sockets


def closed_by_the_server(sockets: list[socket.socket], within_s: float) -> bool:
    """Whether the server closes every one of ``sockets`` within ``within_s`` (a timeout raises); a reset counts."""
    deadline = time.monotonic() + within_s
    for sock in sockets:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            while sock.recv(4096) != b"":  # a connection beyond the limit reads its 503 first
                sock.settimeout(max(0.1, deadline - time.monotonic()))
        except ConnectionResetError:  # refused at once, beyond the limit: its half head reached a closed socket
            pass
    return True
