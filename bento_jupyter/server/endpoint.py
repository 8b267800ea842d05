"""One API as an ASGI endpoint: check, decode, call (batched or direct), encode, count."""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Awaitable, Callable, Sized
from typing import Any

from starlette.types import Receive, Scope, Send

from bento_jupyter.server import asgi_io
from bento_jupyter.server.concurrency import RETRY_AFTER_S, HandlerPool, default_max_concurrency
from bento_jupyter.server.deadlines import request_deadline, tightest, within
from bento_jupyter.server.dispatch.batcher import BatchDispatcher
from bento_jupyter.server.dispatch.devices import (
    batch_mover,
    default_concurrency,
    model_device,
    with_callers_torch_threads,
)
from bento_jupyter.server.dispatch.policy import BatchPolicy, LatencyModel
from bento_jupyter.server.http_errors import (
    ClientDisconnected,
    DeadlineExceeded,
    HandlerFailed,
    HTTPError,
    MethodNotAllowed,
    Overloaded,
    handler_failed,
)
from bento_jupyter.server.metrics import ServiceMetrics
from bento_jupyter.server.request_arguments import ArgumentDecoder
from bento_jupyter.server.samples import DEFAULT_SAMPLES, SampleLog
from bento_jupyter.service.definition import APIMethod
from bento_jupyter.service.json_values import dumps
from bento_jupyter.service.schema import example_request

_TEXT = b"text/plain; charset=utf-8"
_JSON = b"application/json"
_WAITERS_PER_SLOT = 16  # a plain API's default waiting room: max_queue_size = 16 x max_concurrency


class Endpoint:
    """Serves one APIMethod; batchable APIs go through a BatchDispatcher, the others through their own
    HandlerPool. ``request_timeout_s`` caps every request's deadline (``bento-jupyter serve --request-timeout``);
    ``handler_slots`` replaces a plain API's ``max_concurrency`` where the host already bounds the calls (Ray Serve's
    ``max_ongoing_requests``, which frees a cancelled call's slot while its thread still runs)."""

    def __init__(
        self,
        method: APIMethod,
        metrics: ServiceMetrics,
        max_body_bytes: int,
        request_timeout_s: float | None = None,
        handler_slots: int | None = None,
    ) -> None:
        self.method = method
        self._timeout = tightest(method.config.timeout, request_timeout_s)
        self._late = f"{method.name}() did not answer within the request's deadline"
        self._refusals: dict[int, Overloaded] = {}
        self._metrics = metrics.api(method.route)
        self._max_body = max_body_bytes
        self._text_output = method.output.json_schema().get("type") == "string"
        self._run_direct = with_callers_torch_threads(method.func)
        # the handler's keyword arguments from a request body: the one decode of the route, its stream and tasks
        self.decode = ArgumentDecoder(method).decode
        self.example: dict[str, Any] | None = None  # the first body answered 200: the docs' pre-filled example
        # the server's HTTP requests in progress (ServiceApp.count_requests); None: unknown, so never alone
        self.in_flight: Sized | None = None
        # the latest exchanges, replayed against a bento built from this service (none kept when verify=False)
        self.samples = SampleLog(DEFAULT_SAMPLES if method.config.verify else 0)
        # the encoded result of its latest answer, on any route (None: none yet): v2 metadata learns from it
        self.last_answer: Any = None
        self.dispatcher: BatchDispatcher | None = None
        self.pool: HandlerPool | None = None
        if not method.config.batchable:
            limit = handler_slots or method.config.max_concurrency
            limit = limit or (1 << 30 if method.is_async else default_max_concurrency())
            waiting = method.config.max_queue_size or _WAITERS_PER_SLOT * limit
            self.pool = HandlerPool(method.name, limit, waiting)
        else:
            config = method.config
            device = model_device(method.func, config.device)
            policy = BatchPolicy(
                max_batch_size=config.max_batch_size,
                max_latency_s=config.max_latency_ms / 1000,
                max_concurrency=config.max_concurrency or default_concurrency(device),
                max_queue_items=config.max_queue_size or 16 * config.max_batch_size,
                latency=LatencyModel(),
            )
            move = batch_mover(device) if method.takes_tensor else None
            run = method.func if move is None else (lambda batch, f=method.func: f(move(batch)))
            self.dispatcher = BatchDispatcher(
                with_callers_torch_threads(run),
                policy,
                batch_dim=config.batch_dim,
                name=method.name,
                on_batch=lambda size, _s: self._metrics.batched(size),
            )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        began = time.perf_counter()
        self._metrics.in_progress += 1
        status = 200
        try:
            body, media = await self._answer(scope, receive)
            await asgi_io.send_bytes(send, 200, body, media)
        except Overloaded as refusal:
            status = 503
            await asgi_io.send_refusal(send, refusal)
        except HTTPError as error:
            status = error.status
            await asgi_io.send_error(send, error)
        except ClientDisconnected:  # nobody to answer: counted, not timed
            status = 0
            self._metrics.cancelled += 1
        finally:
            self._metrics.in_progress -= 1
            if status:
                self._metrics.answered(status, time.perf_counter() - began)

    async def _answer(self, scope: Scope, receive: Receive) -> tuple[bytes, bytes]:
        if scope["method"] != "POST":
            raise MethodNotAllowed(f"{self.method.route} accepts POST only", headers={"allow": "POST"})
        asgi_io.check_json_request(scope)
        deadline = request_deadline(scope, time.monotonic(), self._timeout)
        self._admit(deadline)  # refuse before reading and decoding a request that would wait too long
        raw = await asgi_io.read_body(scope, receive, self._max_body)
        encoded = await self.call(self.decode(raw), deadline, functools.partial(asgi_io.client_gone, receive))
        if self.example is None:
            self.example = example_request(self.method, raw)
        body, media = self.body(encoded)
        self.samples.record(raw, body, media)
        return body, media

    def body(self, encoded: Any) -> tuple[bytes, bytes]:
        """The response body and media type of an encoded result: text for a ``str`` output, else JSON
        (HandlerFailed when the value has no JSON form)."""
        if self._text_output:
            return str(encoded).encode(), _TEXT
        try:
            return dumps(encoded), _JSON
        except TypeError as exc:
            raise HandlerFailed(f"{self.method.name}() returned a value with no JSON form: {exc}") from exc

    async def infer(
        self, kwargs: dict[str, Any], scope: Scope | None = None, gone: Callable[[], bool] | None = None
    ) -> Any:
        """The encoded result for already decoded arguments (the v2 route, whose ``scope`` may carry a deadline
        header and whose ``gone()`` tells that its client left): the same admission, deadlines, batching, dropped
        disconnected clients (ClientDisconnected), errors and metrics as a request to the API's own route; arrays
        keep their dtype."""
        began = time.perf_counter()
        self._metrics.in_progress += 1
        status = 200
        try:
            now = time.monotonic()
            if scope is not None:
                deadline = request_deadline(scope, now, self._timeout)
            else:
                deadline = None if self._timeout is None else now + self._timeout
            self._admit(deadline)
            return await self.call(kwargs, deadline, gone)
        except HTTPError as error:
            status = error.status
            raise
        except ClientDisconnected:  # nobody to answer: counted, not timed
            status = 0
            self._metrics.cancelled += 1
            raise
        finally:
            self._metrics.in_progress -= 1
            if status:
                self._metrics.answered(status, time.perf_counter() - began)

    def refusal_now(self) -> Overloaded | None:
        """The 503 a one-item request would get now, counted as answered (None: it would be admitted).

        For the connection's fast path (``server.refusal``): it asks before anything is parsed."""
        if self.dispatcher is not None:
            retry_after = self.dispatcher.refusal_now()
        else:
            retry_after = RETRY_AFTER_S if self.pool is not None and self.pool.full() else None
        if retry_after is None:
            return None
        self._metrics.answered(503, 0.0)
        seconds = max(1, math.ceil(retry_after))  # one refusal per Retry-After value, built once
        refusal = self._refusals.get(seconds)
        if refusal is None:
            refusal = self._refusals[seconds] = Overloaded(seconds)
        return refusal

    def _admit(self, deadline: float | None) -> None:
        """Refuse (503) a request that would wait too long, or (504) one that cannot meet its deadline."""
        if self.dispatcher is not None:
            self.dispatcher.admit(1, deadline)
            return
        assert self.pool is not None
        if deadline is not None and deadline <= time.monotonic():
            raise DeadlineExceeded("the request's deadline has already passed: refused before computing")
        self.pool.admit()

    async def call(
        self, kwargs: dict[str, Any], deadline: float | None = None, gone: Callable[[], bool] | None = None
    ) -> Any:
        """The encoded result of one decoded request: the one pipeline of the API's own route, the v2 route
        (``infer``) and the Ray Serve runtime. The handler runs through this API's HandlerPool or, batchable,
        its BatchDispatcher, by ``deadline`` (``time.monotonic`` seconds; DeadlineExceeded past it) while
        ``gone()`` is false (ClientDisconnected); its failure is a HandlerFailed (500) naming it. Admission
        (``_admit``) is asked first by callers that refuse before reading a body."""
        try:
            encoded = self.last_answer = self.method.encode(await self._call(kwargs, deadline, gone))
            return encoded
        except (HTTPError, ClientDisconnected):
            raise
        except Exception as exc:
            raise handler_failed(self.method.name, exc) from exc

    def _call(self, kwargs: dict[str, Any], deadline: float | None, gone: Callable[[], bool] | None) -> Awaitable[Any]:
        """The handler's result, to be awaited (an awaitable, not a coroutine of its own: one frame less)."""
        if self.dispatcher is not None:
            in_flight = self.in_flight
            alone = in_flight is not None and len(in_flight) <= 1  # this request is the only one being handled
            queued = self.dispatcher.submit(kwargs[self.method.batch_param.name], deadline, gone, alone=alone)
            return queued if deadline is None else within(queued, deadline, self._late)
        assert self.pool is not None
        if self.method.is_async:
            return self.pool.call_async(lambda: self.method.func(**kwargs), deadline, gone)
        return self.pool.call_sync(functools.partial(self._run_direct, **kwargs), deadline, gone)

    async def retire(self) -> None:
        """Finish what is queued, then release the worker threads (after a hot swap or stop)."""
        if self.dispatcher is not None:
            await self.dispatcher.drain()
        if self.pool is not None:
            await self.pool.drain()
        self.close()

    def close(self) -> None:
        """Release the worker threads (callers drain first)."""
        if self.dispatcher is not None:
            self.dispatcher.close()
        if self.pool is not None:
            self.pool.close()
