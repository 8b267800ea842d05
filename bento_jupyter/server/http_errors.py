"""Typed HTTP errors and the one place they become JSON responses."""

from __future__ import annotations

import math

import orjson
from starlette.responses import Response

from bento_jupyter.errors import InvalidInput


class HTTPError(Exception):
    """An error that maps to one HTTP status with a JSON body ``{"error": ..., "field": ...}``."""

    status = 500

    def __init__(self, message: str, field: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.headers = headers or {}

    def body(self) -> bytes:
        payload: dict[str, str] = {"error": self.message}
        if self.field:
            payload["field"] = self.field
        return orjson.dumps(payload)


class BadRequest(HTTPError):
    status = 400


class Unauthorized(HTTPError):
    status = 401


def bad_request(problem: InvalidInput) -> BadRequest:
    """A request's invalid input as its 400, naming the field at fault."""
    return BadRequest(problem.message, field=problem.field or None)


class NotFound(HTTPError):
    status = 404


class MethodNotAllowed(HTTPError):
    status = 405


class NotAcceptable(HTTPError):
    status = 406


class RequestTimeout(HTTPError):
    """The API's deadline passed before its deployment answered (the Ray Serve ingress)."""

    status = 408


class PayloadTooLarge(HTTPError):
    status = 413


class UnsupportedMediaType(HTTPError):
    status = 415


class ClientClosedRequest(HTTPError):
    """The client gave up (nginx's 499): what was running for it was canceled."""

    status = 499


class HandlerFailed(HTTPError):
    status = 500


class HandlerRaised(Exception):
    """What a handler raised that no future, task or thread may carry as itself (SystemExit, KeyboardInterrupt,
    GeneratorExit, a CancelledError of its own, StopIteration): wrapped where user code is called, so that it is
    its request's 500 and never stops a thread, a loop or the service. ``raised`` is the original."""

    def __init__(self, raised: BaseException) -> None:
        super().__init__(f"{type(raised).__name__}: {raised}")
        self.raised = raised


def carried(raised: BaseException) -> Exception:
    """``raised`` (by user code) as an exception a future may carry to the request: itself when it is an ordinary
    Exception, else a HandlerRaised around it."""
    if isinstance(raised, Exception) and not isinstance(raised, StopIteration):
        return raised
    return HandlerRaised(raised)


def handler_failed(api: str, exc: BaseException, step: str | None = None) -> HandlerFailed:
    """The 500 of handler ``api`` (or of its ``step``, user code run for it) that raised ``exc``: its type and
    message. Unwrapped from HandlerRaised, and from
    the RuntimeError a coroutine or generator makes of the StopIteration it raised (PEP 479)."""
    raised = exc.raised if isinstance(exc, HandlerRaised) else exc
    cause = raised.__cause__
    if isinstance(raised, RuntimeError) and isinstance(cause, StopIteration):
        raised = cause if str(raised).endswith(" raised StopIteration") else raised
    where = f"{api}()" if step is None else f"{step} of {api}()"
    return HandlerFailed(f"{where} raised {type(raised).__name__}: {raised}")


class ServiceStopped(HTTPError):
    """The service stopped (``%bento stop``, a shutdown past its grace period) before the request was answered."""

    status = 503

    def __init__(self) -> None:
        super().__init__("the service stopped before this request was answered")

    def body(self) -> bytes:
        return orjson.dumps({"error": self.message, "code": "stopped"})


class DeadlineExceeded(HTTPError):
    """The request's deadline (its header, the API's ``timeout``, the server's ``--request-timeout``) cannot be
    met or has passed: answered without computing it late."""

    status = 504


def error_response(error: HTTPError) -> Response:
    """``error`` as a Starlette response: its status, headers and the one JSON error body."""
    return Response(error.body(), error.status, error.headers, "application/json")


class ClientDisconnected(Exception):
    """The client closed its connection while its request waited: nobody to answer, nothing to compute."""


class Overloaded(HTTPError):
    """The queue cannot take this request within its latency budget: retry after a while."""

    status = 503

    def __init__(self, retry_after_s: float) -> None:
        seconds = max(1, math.ceil(retry_after_s))
        super().__init__(f"server overloaded: retry after {seconds}s", headers={"retry-after": str(seconds)})
