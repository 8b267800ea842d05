"""The one uvicorn configuration of every server we run (in-kernel, ``serve``, registry), with its bounds on slow
and idle HTTP clients.

uvicorn times out idle keep-alive connections but not a request head or body that never finishes, so a client
that sends half a request holds its connection (and a file descriptor) forever. :class:`HeadTimeoutProtocol`
closes a connection whose request head is not complete ``head_timeout_s`` after it opened (or after its previous
response), or whose request body stops arriving for ``head_timeout_s``. Beyond ``max_connections`` open
connections (at most what the open-file limit holds) a new connection is answered 503 and closed at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
from dataclasses import dataclass
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

DEFAULT_HEAD_TIMEOUT_S = 10.0
DEFAULT_MAX_CONNECTIONS = 4096
FILE_MARGIN = 256  # file descriptors kept for all but client connections (database, blobs, imports, logs)
_HEAD_TIMEOUT_VARIABLE = "BENTO_JUPYTER_HEAD_TIMEOUT_S"
logger = logging.getLogger(__name__)
_OVER_LIMIT_BODY = b'{"error":"too many open connections: retry later","code":"overloaded"}'
_OVER_LIMIT = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\n"
    b"content-length: %d\r\n\r\n%s" % (len(_OVER_LIMIT_BODY), _OVER_LIMIT_BODY)
)


@dataclass(frozen=True)
class ConnectionLimits:
    head_timeout_s: float = DEFAULT_HEAD_TIMEOUT_S  # seconds a request head may take, or a request body may stall
    max_connections: int = DEFAULT_MAX_CONNECTIONS  # open connections before new requests get 503
    keep_alive_s: int = 5  # idle seconds between requests on one connection

    def uvicorn_options(self) -> dict[str, Any]:
        """``uvicorn.Config`` keyword arguments that enforce these limits."""
        # Through the environment, so that worker processes (spawned, re-importing this module) see it too.
        os.environ[_HEAD_TIMEOUT_VARIABLE] = repr(self.head_timeout_s)
        return {
            "http": HeadTimeoutProtocol,
            "limit_concurrency": connections_the_file_limit_allows(self.max_connections),
            "timeout_keep_alive": self.keep_alive_s,
        }


def uvicorn_config(app: Any, limits: ConnectionLimits | None = None, **options: Any) -> uvicorn.Config:
    """A ``uvicorn.Config`` for ``app`` (an ASGI app, or an import string with ``factory=True``): httptools with
    ``limits`` (default :class:`ConnectionLimits`), the lifespan where the app speaks it (a ServiceApp learns there
    the loop its tasks are called on), no access log, warnings only, and no proxy-headers middleware (nothing here
    reads the client's address or scheme: one middleware less per request). ``options`` add to or override these
    (``workers``, ``log_level``, ``timeout_graceful_shutdown``)."""
    settings: dict[str, Any] = {"lifespan": "auto", "access_log": False, "log_level": "warning", "proxy_headers": False}
    settings.update((limits or ConnectionLimits()).uvicorn_options())
    settings.update(options)
    return uvicorn.Config(app, **settings)


class _CoalescedWrites:
    """A connection's transport as uvicorn's responses see it. uvicorn writes a response's head and its body
    separately: two system calls and two TCP segments where one of each does, and on loopback the first call
    already wakes the client to read half an answer. Here the first write of a turn of the loop (the head) is held
    until the next (the body), and both leave in one ``writelines`` (one ``writev``, no copy). A write left alone
    (a streamed head, ``100 Continue``) leaves at the loop's next turn, before the loop handles any more I/O;
    ``close`` sends it first."""

    __slots__ = ("_armed", "_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None
        self._armed = False  # a flush is scheduled for this turn: later writes of the turn go out at once

    def write(self, data: bytes) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.writelines((held, data))
        elif self._armed:
            self._transport.write(data)
        else:
            self._held = data
            self._armed = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._armed = False
        held = self._held
        if held is not None:
            self._held = None
            if not self._transport.is_closing():  # closed meanwhile: nobody reads a head alone
                self._transport.write(held)

    def close(self) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held)
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class HeadTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing connections whose request head takes too long or whose request body
    stalls.

    A request that arrives whole in one read (nearly every one) starts no timer: a timer runs from a
    connection's opening until its first head is complete, and from the end of a read that left a head
    incomplete. A read that leaves a body incomplete (re)starts it, so a body may take any time as long as its
    bytes keep coming. It does not close a connection the server itself stopped reading (flow control, or
    ``Expect: 100-continue`` before the app asks for the body). Starting and cancelling one per request would
    cost more than the rest of uvicorn's work on it.
    """

    _head_timer: asyncio.TimerHandle | None = None
    _in_head = False  # a request head has begun and is not complete yet
    _in_body = False  # a request head is complete and its body is not yet
    _head_timeout_s = DEFAULT_HEAD_TIMEOUT_S
    _writes: _CoalescedWrites | None = None  # what the connection's responses write through

    def _start_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self._head_timeout_s, self._head_timed_out)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._in_body and (self.flow.read_paused or getattr(self.cycle, "waiting_for_100_continue", False)):
            self._start_head_timer()  # the server, not the client, is the one waiting: look again later
        elif not self.transport.is_closing():
            self.transport.close()

    # asyncio types the argument BaseTransport; a stream server passes a Transport (uvicorn ignores this too)
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._head_timeout_s = float(os.environ.get(_HEAD_TIMEOUT_VARIABLE, DEFAULT_HEAD_TIMEOUT_S))
        super().connection_made(transport)
        if self.limit_concurrency is not None and len(self.connections) > self.limit_concurrency:
            # Answered and closed at once: waiting for its head would hold a file descriptor past the limit.
            transport.write(_OVER_LIMIT)
            transport.close()
            return
        self._start_head_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._in_head:  # this read ended inside a request head
            self._start_head_timer()
        elif self._in_body:  # this read ended inside a request body: the body may stall this long from now
            self._stop_head_timer()
            self._start_head_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._in_body = True
        self._stop_head_timer()
        super().on_headers_complete()
        if self.cycle is not None:
            if self._writes is None:
                self._writes = _CoalescedWrites(self.transport, self.loop)
            self.cycle.transport = self._writes  # type: ignore[assignment]

    def on_message_complete(self) -> None:
        self._in_body = False
        self._stop_head_timer()
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)


def connections_the_file_limit_allows(wanted: int) -> int:
    """``wanted`` open connections, or fewer (with a warning) when this process's open-file limit, raised as far
    as it goes, cannot hold that many plus :data:`FILE_MARGIN`: beyond it a client would get a connection error
    where the limit gives it a 503."""
    raise_file_limit(wanted + FILE_MARGIN)
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or wanted + FILE_MARGIN <= soft:
        return wanted
    allowed = max(1, soft - FILE_MARGIN, soft // 2)
    logger.warning(
        "max connections %d lowered to %d: the open-file limit is %d (ulimit -n), %d kept for files",
        wanted,
        allowed,
        soft,
        soft - allowed,
    )
    return allowed


def raise_file_limit(wanted: int) -> None:
    """Raise this process's open-file soft limit towards ``wanted`` (never above the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def add_limit_arguments(parser: Any) -> None:
    """``--head-timeout`` and ``--max-connections`` on a command that runs a server."""
    parser.add_argument(
        "--head-timeout",
        type=float,
        default=DEFAULT_HEAD_TIMEOUT_S,
        help=(
            "seconds to send a request head, or without sending more of a request body, before the connection "
            f"is closed (default {DEFAULT_HEAD_TIMEOUT_S:g})"
        ),
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        default=DEFAULT_MAX_CONNECTIONS,
        help=(
            f"open connections beyond which requests get 503 (default {DEFAULT_MAX_CONNECTIONS}; lowered, with a "
            f"warning, to what the open-file limit holds less {FILE_MARGIN})"
        ),
    )


def limits_from(args: Any) -> ConnectionLimits:
    if args.head_timeout <= 0 or args.max_connections < 1:
        raise ValueError("--head-timeout must be positive and --max-connections at least 1")
    return ConnectionLimits(head_timeout_s=args.head_timeout, max_connections=args.max_connections)
