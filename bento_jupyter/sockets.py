"""Listening sockets for our servers: loopback by default, a clear error when a port is taken."""

from __future__ import annotations

import argparse
import errno
import socket

from bento_jupyter.errors import PortInUse, ServerStartError

DEFAULT_HOST = "127.0.0.1"
FIRST_PORT = 3000
PORTS_TO_SCAN = 100
LAST_PORT = 65535


def is_port(value: object) -> bool:
    """A TCP port number, 0-65535 (0: any free port); a bool is not one, though Python counts it an int."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= LAST_PORT


def port_number(text: str) -> int:
    """argparse ``type=`` of every port option: a port number, or a one-line refusal naming the text given."""
    try:
        port = int(text)
    except ValueError:
        port = None
    if port is None or not is_port(port):
        raise argparse.ArgumentTypeError(f"a port is a number 0-{LAST_PORT}, not {text!r}")
    return port


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
