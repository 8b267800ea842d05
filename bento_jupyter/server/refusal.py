"""The near-free refusal path: a 503 written straight from the connection's bytes, before any HTTP parsing.

Under a retry storm most requests are refused, and refused clients come straight back. Refusing through
uvicorn and ASGI (parse the head, build a scope, start a task, route, build and validate the response)
costs about as much core time as serving, so the refusals themselves eat the capacity (issue 18). Here a
keep-alive HTTP/1.1 ``POST`` that arrives whole in one read, to an API whose admission would refuse it
now, is answered with a pre-built 503 in a few microseconds: no parser, no task, no body decode, and
the connection is kept. Anything else (a partial read, pipelining, ``Connection``, ``Expect`` or
``Transfer-Encoding`` headers, a query string, an API that would admit it) takes the ordinary path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bento_jupyter.server.http_errors import Overloaded
from bento_jupyter.uvicorn_config import HeadTimeoutProtocol

Refuser = Callable[[bytes], Overloaded | None]  # raw path -> the refusal admission would give now, or None
_CONTENT_LENGTH = b"\r\ncontent-length:"


def find_service(app: Any) -> Any | None:
    """The ServiceApp inside ``app`` (through middleware wrappers): the app with a ``refusal`` method, if any."""
    for _ in range(4):
        if getattr(app, "refusal", None) is not None:
            return app
        app = getattr(app, "app", None)
    return None


class _Answers:
    """Whole 503 responses, rebuilt when uvicorn's default headers (``date``) change, once a second."""

    def __init__(self) -> None:
        self._for: list[tuple[bytes, bytes]] | None = None
        self._by_retry: dict[str, bytes] = {}

    def get(self, refusal: Overloaded, default_headers: list[tuple[bytes, bytes]]) -> bytes:
        if default_headers is not self._for:
            self._for, self._by_retry = default_headers, {}
        retry_after = refusal.headers["retry-after"]
        answer = self._by_retry.get(retry_after)
        if answer is None:
            body = refusal.body()
            head = b"".join(name + b": " + value + b"\r\n" for name, value in default_headers)
            answer = self._by_retry[retry_after] = (
                b"HTTP/1.1 503 Service Unavailable\r\n" + head + b"content-type: application/json\r\n"
                b"content-length: "
                + str(len(body)).encode()
                + b"\r\nretry-after: "
                + retry_after.encode()
                + b"\r\n\r\n"
                + body
            )
        return answer


_answers = _Answers()


def whole_post(data: bytes) -> bytes | None:
    """The raw path of ``data`` when it is exactly one plain keep-alive HTTP/1.1 POST with its whole body."""
    line_end = data.find(b"\r\n")
    head_end = data.find(b"\r\n\r\n")
    if line_end < 0 or head_end < 0 or not data.startswith(b"POST "):
        return None
    target, _, version = data[5:line_end].partition(b" ")
    if version != b"HTTP/1.1" or b"?" in target:
        return None
    head = data[line_end : head_end + 2].lower()
    at = head.find(_CONTENT_LENGTH)
    if at < 0 or b"\r\nconnection:" in head or b"\r\nexpect:" in head or b"\r\ntransfer-encoding:" in head:
        return None
    length = head[at + len(_CONTENT_LENGTH) : head.find(b"\r\n", at + 2)].strip()
    if not length.isdigit() or len(data) != head_end + 4 + int(length):
        return None
    return target


class RefusingProtocol(HeadTimeoutProtocol):
    """uvicorn's httptools protocol (with the head timeout) plus the pre-built 503 for whole requests."""

    _refuser: Refuser | None = None
    _at_boundary = True  # the parser is between messages: the next bytes start a request
    _idle_since = float("-inf")  # loop time of the latest fast refusal on this connection

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        service = find_service(self.app)
        if service is not None:
            self._refuser = service.refusal
            service.count_requests(self.tasks)  # every connection's requests in progress (ServiceApp.count_requests)

    def data_received(self, data: bytes) -> None:
        # With no request in flight on any connection nothing is queued or running, so nothing would be refused:
        # a lone client's request skips the check (and were it wrong, the ordinary path refuses all the same).
        if (
            self._refuser is not None
            and self.tasks
            and self._at_boundary
            and (self.cycle is None or self.cycle.response_complete)
        ):
            target = whole_post(data)
            refusal = self._refuser(target) if target is not None else None
            if refusal is not None:
                self._stop_head_timer()
                self.transport.write(_answers.get(refusal, self.server_state.default_headers))
                self.server_state.total_requests += 1
                # The keep-alive timer is left running and looks again when it fires: re-arming it per
                # refusal would cost as much as the rest of the refusal.
                self._idle_since = self.loop.time()
                if self.timeout_keep_alive_task is None:
                    self.timeout_keep_alive_task = self.loop.call_later(
                        self.timeout_keep_alive, self.timeout_keep_alive_handler
                    )
                return
        super().data_received(data)

    def timeout_keep_alive_handler(self) -> None:
        """Close an idle kept-alive connection, unless a fast refusal answered on it since the timer started."""
        idle = self.loop.time() - self._idle_since
        if idle < self.timeout_keep_alive:
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive - idle, self.timeout_keep_alive_handler
            )
            return
        super().timeout_keep_alive_handler()

    def on_message_begin(self) -> None:
        self._at_boundary = False
        super().on_message_begin()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._at_boundary = True
