"""Generator APIs as streams: one item per Server-Sent Event, per NDJSON line, or per chunk for BentoML's client.

The generator is stepped one item at a time (a sync one on a worker thread), so an item leaves as soon as
it is yielded; when the client goes away nothing more is asked of it and it is closed (its ``finally`` runs).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import time
from collections.abc import AsyncGenerator, AsyncIterator, Generator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
from starlette.types import Message, Receive, Scope, Send

from bento_jupyter.errors import InvalidInput
from bento_jupyter.server import asgi_io
from bento_jupyter.server.deadlines import request_deadline, tightest
from bento_jupyter.server.handler_loop import HandlerLoop
from bento_jupyter.server.http_errors import (
    DeadlineExceeded,
    HandlerFailed,
    HandlerRaised,
    HTTPError,
    MethodNotAllowed,
    ServiceStopped,
    handler_failed,
)
from bento_jupyter.server.metrics import ServiceMetrics
from bento_jupyter.server.request_arguments import ArgumentDecoder
from bento_jupyter.server.samples import DEFAULT_SAMPLES, MAX_SAMPLE_BYTES, SampleLog
from bento_jupyter.server.stream_framing import StreamFormat, sse_event
from bento_jupyter.service.definition import APIMethod
from bento_jupyter.service.json_values import dumps
from bento_jupyter.service.schema import example_request

END = object()  # what ItemSource.next() returns once the generator is exhausted
GONE = object()  # what ItemStream returns once the client has left
# Sync generators step here, not on the loop's default pool: a stream that waits between items (a remote
# model, a sleep) holds a thread per step, and many open streams must neither queue behind each other nor
# starve the other handlers. Threads start only as streams need them.
_STEP_THREADS = 64


@functools.cache
def _step_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(_STEP_THREADS, thread_name_prefix="bento-stream")


class InvalidItem(HandlerFailed):
    """A yielded item that is not what the API's return hint declares (``Iterator[T]``): the server's fault, so
    a 500, naming the item's index (0 for the first) and, inside it, the field."""

    def __init__(self, api: str, index: int, problem: InvalidInput) -> None:
        where = f" at {problem.field}" if problem.field else ""
        super().__init__(
            f"{api}() yielded item {index}, which does not match its declared item type{where}: {problem.message}",
            field=problem.field or None,
        )
        self.index = index

    def body(self) -> bytes:
        payload: dict[str, Any] = {"error": self.message, "item": self.index}
        if self.field:
            payload["field"] = self.field
        return orjson.dumps(payload)


class ItemEncoder:
    """Turns each yielded item into its bytes on the wire, after checking it against the declared item type,
    and a failure into a closing error frame."""

    def __init__(self, method: APIMethod, fmt: StreamFormat) -> None:
        self._method = method
        self._format = fmt
        self._text = method.output.json_schema().get("type") == "string"
        self._count = 0
        self.items: list[bytes] | None = []  # each item as JSON, kept for the API's samples (None: too large)
        self._kept_bytes = 0

    def item(self, value: Any) -> bytes:
        """The item's frame; InvalidItem when it does not match its type, HandlerFailed when it has no JSON form."""
        try:
            self._method.output.check(value)
        except InvalidInput as problem:
            raise InvalidItem(self._method.name, self._count, problem) from None
        except BaseException as exc:  # a validator of the item's type: SystemExit too
            raise HandlerFailed(self._unencodable(exc)) from exc
        try:
            encoded = self._method.encode(value)
            data = dumps(encoded)
        except BaseException as exc:  # a validator of the item's type: SystemExit too
            raise HandlerFailed(self._unencodable(exc)) from exc
        self._count += 1
        self._keep(data)
        if self._format is StreamFormat.NDJSON:
            return data + b"\n"
        if self._format is StreamFormat.JSON:
            return data
        text = str(encoded) if self._text else data.decode()
        if self._format is StreamFormat.BENTOML:
            return text.encode()
        return sse_event(text, event_id=self._count)

    def _keep(self, data: bytes) -> None:
        if self.items is None:
            return
        self._kept_bytes += len(data) + 1
        if self._kept_bytes > MAX_SAMPLE_BYTES:
            self.items = None
        else:
            self.items.append(data)

    def _unencodable(self, exc: BaseException) -> str:
        return f"{self._method.name}() yielded an item that cannot be encoded: {type(exc).__name__}: {exc}"

    def error(self, failure: HTTPError) -> bytes | None:
        """The frame that ends a failed stream (its data: ``failure``'s JSON body), or None where the framing
        has none (BentoML's, and JSON's: a whole answer, never started when a stream fails)."""
        body = failure.body()
        if self._format is StreamFormat.NDJSON:
            return body + b"\n"
        if self._format in (StreamFormat.BENTOML, StreamFormat.JSON):
            return None
        return sse_event(body.decode(), event="error")


class ItemSource:
    """Steps a sync or async generator one item at a time (a sync one on a step thread, an async one on the API's
    ``handler_loop``, never on the server's loop); ``close()`` runs its ``finally``."""

    def __init__(
        self, generator: Generator[Any, Any, Any] | AsyncGenerator[Any, Any], handler_loop: HandlerLoop
    ) -> None:
        self._handlers = handler_loop
        self._async: AsyncGenerator[Any, Any] | None = None
        self._sync: Generator[Any, Any, Any] | None = None
        if isinstance(generator, AsyncGenerator):
            self._async = generator
        else:
            self._sync = generator
        self._is_async = self._async is not None
        self._stepping: asyncio.Future[Any] | None = None  # a sync step left running when the stream ended

    async def next(self) -> Any:
        """The next item, or ``END``."""
        if self._async is not None:
            try:
                return await self._handlers.run(_next_item(self._async))
            except StopAsyncIteration:
                return END
        assert self._sync is not None  # set whenever _async is not
        step = contextvars.copy_context().run
        return await asyncio.get_running_loop().run_in_executor(_step_pool(), step, _advance, self._sync)

    async def next_unless(self, disconnected: asyncio.Future[None]) -> tuple[bool, Any]:
        """(True, next item or ``END``), or (False, None) when the client left first.

        When the client leaves (or the deadline passes), an async generator gets CancelledError at its await
        (a step that does not await is waited for); a sync step is left to finish on its thread, and ``close()``
        closes the generator once it has, so the answer ends now and nothing further is computed.
        """
        if disconnected.done():
            return False, None
        stepping = asyncio.ensure_future(self.next())
        await asyncio.wait({stepping, disconnected}, return_when=asyncio.FIRST_COMPLETED)
        if stepping.done():
            return True, stepping.result()
        if not self._is_async:
            self._stepping = stepping  # a thread cannot be interrupted: close() follows the step
            return False, None
        stepping.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await stepping
        return False, None

    async def close(self) -> None:
        """Close the generator (its ``finally`` runs); a sync step still running is closed after, on its thread."""
        if self._async is not None:
            await self._handlers.run(self._async.aclose())
            return
        assert self._sync is not None
        stepping, self._stepping = self._stepping, None
        if stepping is not None and not stepping.done():
            stepping.add_done_callback(functools.partial(_close_after_step, self._sync))
            return
        await asyncio.get_running_loop().run_in_executor(_step_pool(), _close, self._sync)


async def _next_item(generator: AsyncGenerator[Any, Any]) -> Any:
    """The async generator's next item (awaited on its handler loop: ``__anext__()`` is no coroutine to submit)."""
    return await generator.__anext__()


def _close_after_step(generator: Generator[Any, Any, Any], step: asyncio.Future[Any]) -> None:
    """Close a sync generator whose step outlived its stream, once that step is done (its outcome goes nowhere)."""
    if not step.cancelled():
        step.exception()
    _step_pool().submit(_close, generator)


def _advance(generator: Generator[Any, Any, Any]) -> Any:
    """The generator's next item, or ``END`` (run on a step thread); what it raises as an exception a future may
    carry (a SystemExit must not end the thread, nor the server's loop that awaits the step)."""
    try:
        return next(generator, END)
    except Exception:
        raise
    except BaseException as exc:
        raise HandlerRaised(exc) from exc


def _close(generator: Generator[Any, Any, Any]) -> None:
    """Close the generator (run on a step thread), whatever its ``finally`` raises."""
    try:
        generator.close()
    except Exception:
        raise
    except BaseException as exc:
        raise HandlerRaised(exc) from exc


async def _until_disconnect(receive: Receive) -> None:
    message: Message = {}
    while message.get("type") != "http.disconnect":
        message = await receive()


class ItemStream:
    """One call of a generator API as frames on the wire, for every host of the stream (the server's route and the
    Ray Serve runtime): ``first()`` before the response starts, then ``rest()``.

    ``disconnected`` (None where the host cancels the stream itself) ends the stream with ``gone`` set; a failure
    after the first frame ends it with its error frame, where the framing has one, and is kept in ``failure``.
    ``deadline`` (``time.monotonic`` seconds) bounds the whole response: the stream ends there with
    DeadlineExceeded (a 504 before the first frame, its error frame after), and the generator computes no
    further item (a sync step already running finishes on its thread, unwaited; an async one is cancelled at
    its await).
    """

    def __init__(self, method: APIMethod, source: ItemSource, fmt: StreamFormat, deadline: float | None = None) -> None:
        self._method = method
        self.source = source
        self.encoder = ItemEncoder(method, fmt)
        self.gone = False
        self.failure: HTTPError | None = None
        self._deadline = deadline
        self._ends: asyncio.Future[None] | None = None  # done at the deadline or when the client leaves

    def _until(self, disconnected: asyncio.Future[None] | None) -> asyncio.Future[None] | None:
        """What ends a wait for the next item: the client leaving, the deadline, or nothing (None)."""
        if self._deadline is None:
            return disconnected
        if self._ends is None:
            loop = asyncio.get_running_loop()
            ends: asyncio.Future[None] = loop.create_future()
            timer = loop.call_later(max(0.0, self._deadline - time.monotonic()), _end, ends)
            ends.add_done_callback(lambda _: timer.cancel())
            if disconnected is not None:
                disconnected.add_done_callback(lambda _: _end(ends))
            self._ends = ends
        return self._ends

    async def _next(self, disconnected: asyncio.Future[None] | None) -> Any:
        """The next item, ``END``, or ``GONE``; HTTPError when the generator fails or the deadline passes."""
        late = f"{self._method.name}() did not finish its stream within the request's deadline"
        if self._deadline is not None and time.monotonic() >= self._deadline:
            raise DeadlineExceeded(late)
        until = self._until(disconnected)
        try:
            if until is None:
                return await self.source.next()
            arrived, item = await self.source.next_unless(until)
        except Exception as exc:
            raise handler_failure(self._method, exc) from exc
        if arrived:
            return item
        if disconnected is not None and disconnected.done():
            return GONE
        raise DeadlineExceeded(late)

    async def first(self, disconnected: asyncio.Future[None] | None = None) -> bytes | None:
        """The first item's frame, or None for an empty stream or a client gone (``gone``). A failure before the
        first frame (an invalid first item or one with no JSON form included) is raised: a plain HTTP error, as
        for any other API."""
        item = await self._next(disconnected)
        if item is GONE:
            self.gone = True
        return None if item is END or item is GONE else self.encoder.item(item)

    async def rest(self, disconnected: asyncio.Future[None] | None = None) -> AsyncIterator[bytes]:
        """The frames after the first, up to the end of the stream, the client leaving or a failure."""
        while True:
            try:
                item = await self._next(disconnected)
                if item is END:
                    return
                if item is GONE:
                    self.gone = True
                    return
                frame = self.encoder.item(item)
            except HTTPError as failure:
                self.failure = failure
                closing = self.encoder.error(failure)
                if closing is not None:
                    yield closing
                return
            yield frame


def _end(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def handler_failure(method: APIMethod, exc: BaseException) -> HandlerFailed:
    """The 500 of a generator that raised ``exc``, naming the API."""
    return handler_failed(method.name, exc)


async def _end_stopped(stream: ItemStream, send: Send) -> None:
    """End a started stream with the error frame of a stopped service (none in BentoML's framing)."""
    closing = stream.encoder.error(ServiceStopped())
    if closing is None:
        return
    with contextlib.suppress(Exception):  # the connection may be gone already
        await send({"type": "http.response.body", "body": closing, "more_body": True})
        await send({"type": "http.response.body", "body": b""})


class StreamEndpoint:
    """Serves one generator APIMethod: checks and decodes the request, then streams what the generator yields."""

    def __init__(
        self, method: APIMethod, metrics: ServiceMetrics, max_body_bytes: int, request_timeout_s: float | None = None
    ) -> None:
        self.method = method
        self._timeout = tightest(method.config.timeout, request_timeout_s)  # bounds each whole response
        self._metrics = metrics.api(method.route)
        self._max_body = max_body_bytes
        self.example: dict[str, Any] | None = None  # the first body streamed: the docs' pre-filled example
        # the latest streams answered in full, with their items (replayed against a bento built from this service)
        self.samples = SampleLog(DEFAULT_SAMPLES if method.config.verify else 0)
        # the generator's keyword arguments from a request body: the same decode as a unary API's (Endpoint)
        self.decode = ArgumentDecoder(method).decode
        self._handlers = HandlerLoop(method.name)  # an async generator's own loop, started at its first stream
        self._open = 0  # streams in flight on this endpoint
        self._idle = asyncio.Event()  # set while none is: what retire() waits for
        self._idle.set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        began = time.perf_counter()
        self._metrics.in_progress += 1
        self._open += 1
        self._idle.clear()
        status = 200
        try:
            status = await self._stream(scope, receive, send)
        except HTTPError as error:
            status = error.status
            await asgi_io.send_error(send, error)
        finally:
            self._open -= 1
            if not self._open:
                self._idle.set()
            self._metrics.in_progress -= 1
            self._metrics.answered(status, time.perf_counter() - began)

    def open(self, kwargs: dict[str, Any], fmt: StreamFormat, deadline: float | None = None) -> ItemStream:
        """Call the generator API with decoded arguments: its items framed as ``fmt``, until ``deadline`` (close
        its ``source``)."""
        try:
            source = ItemSource(self.method.func(**kwargs), self._handlers)
        except BaseException as exc:  # a generator function wrapped by something that calls early
            raise handler_failure(self.method, exc) from exc
        return ItemStream(self.method, source, fmt, deadline)

    async def _stream(self, scope: Scope, receive: Receive, send: Send) -> int:
        if scope["method"] != "POST":
            raise MethodNotAllowed(f"{self.method.route} accepts POST only", headers={"allow": "POST"})
        asgi_io.check_json_request(scope)
        fmt = StreamFormat.negotiate(scope)
        deadline = request_deadline(scope, time.monotonic(), self._timeout)
        if deadline is not None and deadline <= time.monotonic():
            raise DeadlineExceeded("the request's deadline has already passed: refused before computing")
        raw = await asgi_io.read_body(scope, receive, self._max_body)
        stream = self.open(self.decode(raw), fmt, deadline)
        disconnected = asyncio.ensure_future(_until_disconnect(receive))
        try:
            if fmt is StreamFormat.JSON:
                status = await self._whole(stream, send, disconnected)
            else:
                status = await self._pump(stream, fmt, send, disconnected)
            if status == 200:
                self.samples.record_stream(raw, stream.encoder.items)
                if self.example is None:
                    self.example = example_request(self.method, raw)
            return status
        finally:
            disconnected.cancel()
            with contextlib.suppress(Exception):
                await stream.source.close()

    async def _whole(self, stream: ItemStream, send: Send, disconnected: asyncio.Future[None]) -> int:
        """Every item as one JSON array, once the generator is exhausted; any failure is a plain HTTP error."""
        first = await stream.first(disconnected)
        frames = [] if first is None else [first, *[frame async for frame in stream.rest(disconnected)]]
        if stream.gone:
            return 499
        if stream.failure is not None:
            raise stream.failure
        await asgi_io.send_bytes(send, 200, b"[" + b",".join(frames) + b"]")
        return 200

    async def _pump(self, stream: ItemStream, fmt: StreamFormat, send: Send, disconnected: asyncio.Future[None]) -> int:
        first = await stream.first(disconnected)
        if stream.gone:
            return 499
        headers = [
            (b"content-type", f"{fmt.media_type}; charset=utf-8".encode()),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),  # ask nginx-style proxies not to hold items back
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        if first is not None:
            await send({"type": "http.response.body", "body": first, "more_body": True})
            try:
                async for frame in stream.rest(disconnected):
                    await send({"type": "http.response.body", "body": frame, "more_body": True})
            except asyncio.CancelledError:  # the service stopped mid-stream: its error frame ends it
                await _end_stopped(stream, send)
                raise
        if stream.gone:
            return 499
        if stream.failure is not None and fmt is StreamFormat.BENTOML:
            # BentoML's framing has no error frame: as BentoML's own server does, the response is left
            # unfinished, so the server drops the connection mid-body and BentoML's client raises.
            return stream.failure.status
        await send({"type": "http.response.body", "body": b""})
        return 200 if stream.failure is None else stream.failure.status

    async def retire(self) -> None:
        """Nothing is queued here: streams in flight finish on the old handler, then its loop ends."""
        await self._idle.wait()
        self.close()

    def close(self) -> None:
        """End the async generators' loop (callers let the streams in flight finish first)."""
        self._handlers.close()
