"""Run an ASGI app with uvicorn on a background thread of the current process (the kernel)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from bento_jupyter.errors import ServerStartError
from bento_jupyter.server.http_errors import ServiceStopped
from bento_jupyter.server.refusal import RefusingProtocol
from bento_jupyter.sockets import DEFAULT_HOST, bind_socket
from bento_jupyter.uvicorn_config import uvicorn_config

T = TypeVar("T")


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


_STOPPED_BODY = ServiceStopped().body()
_THREAD_PREFIX = "bento-server-"


class _AnsweredCancellations(logging.Filter):
    """Drops uvicorn's "Cancel N running task(s), timeout graceful shutdown exceeded" logged by our servers'
    threads: ``_Serving`` answers each of those requests 503 ``stopped``, so in a notebook the line is only noise.
    Every other record, and that one from any other server in the process, passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        ours = record.threadName is not None and record.threadName.startswith(_THREAD_PREFIX)
        return not (ours and str(record.msg).startswith("Cancel %s running task(s)"))


_ANSWERED_CANCELLATIONS = _AnsweredCancellations()


class _Serving:
    """Sends requests that arrived on the control socket (if any) to the control app, all others to the app.

    A request still running when the server stops past its grace period is cancelled by uvicorn: it is answered
    503 (when nothing was sent yet) instead of leaving a CancelledError traceback in the notebook.
    """

    def __init__(self, app: ASGIApp, control: ASGIApp | None = None, control_port: int | None = None) -> None:
        self.app, self.control, self.control_port = app, control, control_port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        server = scope.get("server")
        on_control = self.control is not None and server is not None and server[1] == self.control_port
        try:
            await (self.control if on_control and self.control is not None else self.app)(scope, receive, send)
        except asyncio.CancelledError:
            if scope["type"] != "http":
                raise
            with contextlib.suppress(Exception):  # a response already begun just ends with the connection
                headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
                await send({"type": "http.response.start", "status": 503, "headers": headers})
                await send({"type": "http.response.body", "body": _STOPPED_BODY})


class ThreadedServer:
    """uvicorn serving ``app`` from a daemon thread; ``start()`` returns once it accepts requests.

    With ``control``, the same server also listens on a free 127.0.0.1 port that answers only ``control``.
    """

    def __init__(
        self, app: ASGIApp, host: str = DEFAULT_HOST, port: int | None = None, control: ASGIApp | None = None
    ) -> None:
        self._sock = bind_socket(host, port)
        self.host = host
        self.port: int = self._sock.getsockname()[1]
        self._sockets = [self._sock]
        self.control_url: str | None = None
        control_port: int | None = None
        if control is not None:
            control_sock = bind_socket(DEFAULT_HOST, 0)
            self._sockets.append(control_sock)
            control_port = control_sock.getsockname()[1]
            self.control_url = f"http://{DEFAULT_HOST}:{control_port}"
        app = _Serving(app, control, control_port)
        # httptools with a head timeout, a connection limit and the near-free 503
        self._server = uvicorn.Server(uvicorn_config(app, timeout_graceful_shutdown=5, http=RefusingProtocol))
        logging.getLogger("uvicorn.error").addFilter(_ANSWERED_CANCELLATIONS)  # once: the same filter object
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, name=f"{_THREAD_PREFIX}{self.port}", daemon=True)
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def _run(self) -> None:
        try:
            with asyncio.Runner(loop_factory=_new_loop) as runner:
                self._loop = runner.get_loop()
                runner.run(self._server.serve(sockets=self._sockets))
        except BaseException as exc:  # reported by start()
            self._error = exc

    def start(self, timeout: float = 15.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise ServerStartError(f"server on {self.url} exited during startup: {self._error!r}")
            if time.monotonic() > deadline:
                self.stop()
                raise ServerStartError(f"server on {self.url} did not start within {timeout:g}s")
            time.sleep(0.01)

    def submit(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        """Schedule ``coroutine`` on the server's loop without waiting."""
        if self._loop is not None:
            asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        """Ask uvicorn to finish in-flight requests and exit; wait a bounded time for the thread."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout)
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()
