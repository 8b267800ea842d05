"""Generator APIs as streams: one item per Server-Sent Event, per NDJSON line, or per chunk for BentoML's client.

The generator is stepped one item at a time (a sync one on a worker thread), so an item leaves as soon as
it is yielded; when the client goes away nothing more is asked of it and it is closed (its ``finally`` runs).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import enum
import functools
import re
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
from starlette.types import Message, Receive, Scope, Send

from bento_jupyter.errors import InvalidInput
from bento_jupyter.server import asgi_io
from bento_jupyter.server.asgi_io import NDJSON_MEDIA_TYPE, SSE_MEDIA_TYPE
from bento_jupyter.server.http_errors import BadRequest, HandlerFailed, HTTPError, MethodNotAllowed
from bento_jupyter.server.metrics import ServiceMetrics
from bento_jupyter.server.samples import DEFAULT_SAMPLES, MAX_SAMPLE_BYTES, SampleLog
from bento_jupyter.server.schema import example_request
from bento_jupyter.service.definition import APIMethod
from bento_jupyter.service.json_values import dumps

_NDJSON_ACCEPTED = (b"application/x-ndjson", b"application/jsonl", b"application/json-lines")
# BentoML's client reads a stream chunk by chunk, one item per chunk, with no framing (as BentoML serves it).
_BENTOML_CLIENT = b"bentoml http client/"
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
END = object()  # what ItemSource.next() returns once the generator is exhausted
# Sync generators step here, not on the loop's default pool: a stream that waits between items (a remote
# model, a sleep) holds a thread per step, and many open streams must neither queue behind each other nor
# starve the other handlers. Threads start only as streams need them.
_STEP_THREADS = 64


@functools.cache
def _step_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(_STEP_THREADS, thread_name_prefix="bento-stream")


class StreamFormat(enum.Enum):
    """How items are framed on the wire, chosen from the request's ``Accept`` and ``User-Agent``."""

    SSE = "sse"
    NDJSON = "ndjson"
    BENTOML = "bentoml"  # BentoML's own framing: the item's bytes alone, under an event-stream media type

    @property
    def media_type(self) -> str:
        return NDJSON_MEDIA_TYPE if self is StreamFormat.NDJSON else SSE_MEDIA_TYPE

    @classmethod
    def negotiate(cls, scope: Scope) -> StreamFormat:
        accept = asgi_io.header(scope, b"accept").lower()
        if any(kind in accept for kind in _NDJSON_ACCEPTED):
            return cls.NDJSON
        if SSE_MEDIA_TYPE.encode() not in accept and asgi_io.header(scope, b"user-agent").lower().startswith(
            _BENTOML_CLIENT
        ):
            return cls.BENTOML
        return cls.SSE


def sse_event(data: str, event: str | None = None, event_id: int | None = None) -> bytes:
    """One event in the framing of the HTML standard's ``text/event-stream``: a ``data:`` line per line of data."""
    fields = [] if event is None else [f"event: {event}"]
    if event_id is not None:
        fields.append(f"id: {event_id}")
    fields.extend(f"data: {line}" for line in _LINE_BREAK.split(data))
    return ("\n".join(fields) + "\n\n").encode()


class ItemEncoder:
    """Turns each yielded item into its bytes on the wire, and a failure into a closing error frame."""

    def __init__(self, method: APIMethod, fmt: StreamFormat) -> None:
        self._method = method
        self._format = fmt
        self._text = method.output.json_schema().get("type") == "string"
        self._count = 0
        self.items: list[bytes] | None = []  # each item as JSON, kept for the API's samples (None: too large)
        self._kept_bytes = 0

    def item(self, value: Any) -> bytes:
        encoded = self._method.encode(value)
        self._count += 1
        self._keep(encoded)
        if self._format is StreamFormat.NDJSON:
            return dumps(encoded) + b"\n"
        text = str(encoded) if self._text else dumps(encoded).decode()
        if self._format is StreamFormat.BENTOML:
            return text.encode()
        return sse_event(text, event_id=self._count)

    def _keep(self, encoded: Any) -> None:
        if self.items is None:
            return
        item = dumps(encoded)
        self._kept_bytes += len(item) + 1
        if self._kept_bytes > MAX_SAMPLE_BYTES:
            self.items = None
        else:
            self.items.append(item)

    def error(self, message: str) -> bytes | None:
        """The frame that ends a failed stream, or None where the framing has none (BentoML's)."""
        body = orjson.dumps({"error": message})
        if self._format is StreamFormat.NDJSON:
            return body + b"\n"
        if self._format is StreamFormat.BENTOML:
            return None
        return sse_event(body.decode(), event="error")


class ItemSource:
    """Steps a sync or async generator one item at a time; ``close()`` runs its ``finally``."""

    def __init__(self, generator: Iterator[Any] | AsyncIterator[Any]) -> None:
        self._generator = generator
        self._is_async = hasattr(generator, "__anext__")

    async def next(self) -> Any:
        """The next item, or ``END``."""
        if self._is_async:
            try:
                return await self._generator.__anext__()  # type: ignore[union-attr]
            except StopAsyncIteration:
                return END
        step = contextvars.copy_context().run
        return await asyncio.get_running_loop().run_in_executor(_step_pool(), step, next, self._generator, END)

    async def next_unless(self, disconnected: asyncio.Future[None]) -> tuple[bool, Any]:
        """(True, next item or ``END``), or (False, None) when the client left first.

        When the client leaves, an async generator gets CancelledError at its await; a sync step
        already on its thread is waited for, so that ``close()`` finds the generator idle.
        """
        stepping = asyncio.ensure_future(self.next())
        await asyncio.wait({stepping, disconnected}, return_when=asyncio.FIRST_COMPLETED)
        if stepping.done():
            return True, stepping.result()
        if self._is_async:
            stepping.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await stepping
        return False, None

    async def close(self) -> None:
        if self._is_async:
            await self._generator.aclose()  # type: ignore[union-attr]
        else:
            await asyncio.get_running_loop().run_in_executor(_step_pool(), self._generator.close)  # type: ignore[union-attr]


async def _until_disconnect(receive: Receive) -> None:
    message: Message = {}
    while message.get("type") != "http.disconnect":
        message = await receive()


class StreamEndpoint:
    """Serves one generator APIMethod: checks and decodes the request, then streams what the generator yields."""

    def __init__(self, method: APIMethod, metrics: ServiceMetrics, max_body_bytes: int) -> None:
        self.method = method
        self._metrics = metrics.api(method.route)
        self._max_body = max_body_bytes
        self.example: dict[str, Any] | None = None  # the first body streamed: the docs' pre-filled example
        # the latest streams answered in full, with their items (replayed against a bento built from this service)
        self.samples = SampleLog(DEFAULT_SAMPLES if method.config.verify else 0)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        began = time.perf_counter()
        self._metrics.in_progress += 1
        status = 200
        try:
            status = await self._stream(scope, receive, send)
        except HTTPError as error:
            status = error.status
            await asgi_io.send_error(send, error)
        finally:
            self._metrics.in_progress -= 1
            self._metrics.answered(status, time.perf_counter() - began)

    def _start(self, kwargs: dict[str, Any]) -> ItemSource:
        try:
            return ItemSource(self.method.func(**kwargs))
        except Exception as exc:  # a generator function wrapped by something that calls early
            raise HandlerFailed(self._failure(exc)) from exc

    def _failure(self, exc: BaseException) -> str:
        return f"{self.method.name}() raised {type(exc).__name__}: {exc}"

    def _unencodable(self, exc: BaseException) -> str:
        return f"{self.method.name}() yielded an item that cannot be encoded: {type(exc).__name__}: {exc}"

    async def _end_with_error(self, send: Send, encoder: ItemEncoder, message: str) -> int:
        """Closes a started stream with its error frame; the status is a 500 for the metrics.

        BentoML's framing has no error frame: as BentoML's own server does, the response is left unfinished, so
        the server drops the connection mid-body and BentoML's client raises instead of seeing a complete stream.
        """
        frame = encoder.error(message)
        if frame is not None:
            await send({"type": "http.response.body", "body": frame, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        return 500

    async def _stream(self, scope: Scope, receive: Receive, send: Send) -> int:
        if scope["method"] != "POST":
            raise MethodNotAllowed(f"{self.method.route} accepts POST only", headers={"allow": "POST"})
        asgi_io.check_json_request(scope)
        raw = await asgi_io.read_body(scope, receive, self._max_body)
        try:
            kwargs = self.method.decode(raw)
        except InvalidInput as exc:
            raise BadRequest(exc.message, field=exc.field or None) from None
        fmt = StreamFormat.negotiate(scope)
        encoder = ItemEncoder(self.method, fmt)
        source = self._start(kwargs)
        disconnected = asyncio.ensure_future(_until_disconnect(receive))
        try:
            status = await self._pump(source, encoder, fmt, send, disconnected)
            if status == 200:
                self.samples.record_stream(raw, encoder.items)
                if self.example is None:
                    self.example = example_request(self.method, raw)
            return status
        finally:
            disconnected.cancel()
            with contextlib.suppress(Exception):
                await source.close()

    async def _pump(
        self,
        source: ItemSource,
        encoder: ItemEncoder,
        fmt: StreamFormat,
        send: Send,
        disconnected: asyncio.Future[None],
    ) -> int:
        # An error before the first item is still a plain HTTP error, as for any other API.
        try:
            arrived, first = await source.next_unless(disconnected)
        except Exception as exc:
            raise HandlerFailed(self._failure(exc)) from exc
        if not arrived:
            return 499
        body = b""
        if first is not END:  # a first item with no JSON form is a plain 500 too
            try:
                body = encoder.item(first)
            except Exception as exc:
                raise HandlerFailed(self._unencodable(exc)) from exc
        headers = [
            (b"content-type", f"{fmt.media_type}; charset=utf-8".encode()),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),  # ask nginx-style proxies not to hold items back
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        item = first
        while item is not END:
            await send({"type": "http.response.body", "body": body, "more_body": True})
            try:
                arrived, item = await source.next_unless(disconnected)
            except Exception as exc:
                return await self._end_with_error(send, encoder, self._failure(exc))
            if not arrived:
                return 499
            if item is not END:
                try:
                    body = encoder.item(item)
                except Exception as exc:
                    return await self._end_with_error(send, encoder, self._unencodable(exc))
        await send({"type": "http.response.body", "body": b""})
        return 200

    async def retire(self) -> None:
        """Nothing is queued here: streams in flight finish on the old handler."""
