"""An ASGI middleware refusing request bodies over a size limit with 413, for servers that have no such setting."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bento_jupyter.server import asgi_io
from bento_jupyter.server.http_errors import PayloadTooLarge


class BodyLimit:
    """Answers ``413 {"error": ...}`` to a request whose body exceeds ``max_bytes``, as our own server does.

    A declared ``Content-Length`` over the limit is refused before the app runs. A chunked body is counted
    as the app reads it: once past the limit, the client gets the 413 (if no answer has started) and the
    app reads a disconnect. BentoML 1.4 has no request-size setting; its services take this through
    ``add_asgi_middleware``.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = asgi_io.header(scope, b"content-length")
        if declared.isdigit() and int(declared) > self.max_bytes:
            error = PayloadTooLarge(f"request body of {int(declared)} bytes exceeds the {self.max_bytes}-byte limit")
            await asgi_io.send_error(send, error)
            return
        await self.app(scope, *_Counted(receive, send, self.max_bytes).channels())


class _Counted:
    """One request's ``receive`` and ``send``, counting body bytes and answering 413 once they exceed the limit."""

    def __init__(self, receive: Receive, send: Send, limit: int) -> None:
        self._receive, self._send, self._limit = receive, send, limit
        self._seen = 0
        self._started = False  # the app began its answer: too late for a 413
        self._refused = False

    def channels(self) -> tuple[Receive, Send]:
        return self.receive, self.send

    async def receive(self) -> Message:
        if self._refused:
            return {"type": "http.disconnect"}
        message = await self._receive()
        if message["type"] == "http.request":
            self._seen += len(message.get("body", b""))
            if self._seen > self._limit:
                self._refused = True
                if not self._started:
                    error = PayloadTooLarge(f"request body exceeds the {self._limit}-byte limit")
                    await asgi_io.send_error(self._send, error)
                return {"type": "http.disconnect"}
        return message

    async def send(self, message: Message) -> None:
        if self._refused:  # the client has its 413; what the app says after its disconnect goes nowhere
            return
        self._started = True
        await self._send(message)
