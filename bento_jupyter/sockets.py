"""Listening sockets for our servers: loopback by default, a clear error when a port is taken."""

from __future__ import annotations

import errno
import socket

from bento_jupyter.errors import PortInUse, ServerStartError

DEFAULT_HOST = "127.0.0.1"
FIRST_PORT = 3000
PORTS_TO_SCAN = 100


def bind_socket(host: str, port: int | None) -> socket.socket:
    """A bound listening socket: on ``port`` exactly, or on the first free port from 3000 up."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    candidates = [port] if port is not None else range(FIRST_PORT, FIRST_PORT + PORTS_TO_SCAN)
    for candidate in candidates:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, candidate))
        except OSError as exc:
            sock.close()
            if exc.errno != errno.EADDRINUSE:
                raise ServerStartError(f"cannot bind {host}:{candidate}: {exc.strerror}") from None
            if port is not None:
                raise PortInUse(
                    f"port {port} on {host} is already in use: choose another --port, or omit it to pick a free one"
                ) from None
            continue
        sock.listen(2048)
        sock.set_inheritable(True)
        return sock
    raise ServerStartError(f"no free port on {host} in {FIRST_PORT}-{FIRST_PORT + PORTS_TO_SCAN - 1}")
