"""The batch dispatcher: merges concurrent calls of one batchable API into single model calls."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from bento_jupyter.server import batch_values
from bento_jupyter.server.batch_policy import BatchPolicy, QueueState
from bento_jupyter.server.http_errors import Overloaded

BatchObserver = Callable[[int, float], None]


@dataclass(eq=False)
class _Request:
    value: Any
    size: int
    key: Any
    arrival: float
    future: asyncio.Future[Any]
    taken: int = 0  # items already handed to a batch (a large request spans several)
    settled: int = 0  # items whose batch has answered
    pieces: dict[int, Any] = field(default_factory=dict)  # start offset -> output piece
    error: BaseException | None = None

    def settle(self, start: int, stop: int, outcome: Any, batch_dim: int) -> None:
        """Record one batch's answer for items ``start:stop``; answer the client once all are back."""
        if isinstance(outcome, BaseException):
            self.error = self.error or outcome
        else:
            self.pieces[start] = outcome
        self.settled += stop - start
        if self.settled < self.size or self.future.done():
            return
        if self.error is not None:
            self.future.set_exception(self.error)
        else:
            self.future.set_result(batch_values.concat([self.pieces[k] for k in sorted(self.pieces)], batch_dim))


class _RunTime(NamedTuple):
    """A run on its own thread: its time there, less other threads' turns on the core, and its CPU share."""

    alone: float
    cpu_share: float

    @classmethod
    def between(cls, began: tuple[float, float, float], ended: tuple[float, float, float]) -> _RunTime:
        """From (wall, thread CPU, process CPU) clock readings before and after the run.

        Time the process's other threads (the event loop) held the core is left out: on one
        core they take turns with the run, which then waits for the core, not for I/O or a GPU.
        """
        wall, thread, process = (end - start for start, end in zip(began, ended, strict=True))
        alone = max(wall - (process - thread), thread, 1e-9)
        return cls(alone, thread / alone)


def _clocks() -> tuple[float, float, float]:
    return time.perf_counter(), time.thread_time(), time.process_time()


class _Part(NamedTuple):
    request: _Request
    start: int
    stop: int


class BatchDispatcher:
    """Queues requests of one API, runs merged batches, answers each request.

    ``run_batch`` is the handler: it takes one merged value and returns one output item per input
    item. Short batches run on the event loop's own thread when one runs at a time (see
    ``BatchPolicy.runs_on_loop``), a lone one right in its request's task; the others run on
    ``max_concurrency`` worker threads.
    """

    def __init__(
        self,
        run_batch: Callable[[Any], Any],
        policy: BatchPolicy,
        *,
        batch_dim: int = 0,
        name: str = "api",
        clock: Callable[[], float] = time.monotonic,
        on_batch: BatchObserver | None = None,
    ) -> None:
        self._run_batch = run_batch
        self._policy = policy
        self._batch_dim = batch_dim
        self._clock = clock
        self._on_batch = on_batch
        self._queue: deque[_Request] = deque()
        self._queued_items = 0
        self._running: list[tuple[float, int]] = []  # (start time, size) of batches in flight
        self._timer: asyncio.TimerHandle | None = None
        self._pump_scheduled = False
        self._backlog_since: float | None = None  # a batch ended with requests still queued
        self._looked_once = False
        self._executor = ThreadPoolExecutor(policy.max_concurrency, thread_name_prefix=f"bento-{name}")
        self._idle = asyncio.Event()
        self._idle.set()

    def _state(self) -> QueueState:
        now = self._clock()
        if not self._queue and not self._running:  # the common case at low load, kept cheap
            return QueueState(now, 0, now, 0, 0.0)
        bound = self._policy.latency.bound
        remaining = min((start + bound(size) - now for start, size in self._running), default=0.0)
        oldest = self._queue[0].arrival if self._queue else now
        return QueueState(now, self._queued_items, oldest, len(self._running), max(0.0, remaining))

    def admit(self, size: int = 1) -> QueueState:
        """Raise Overloaded when a request of ``size`` items would not be answered within its budget."""
        state = self._state()
        retry_after = self._policy.refusal(state, size)
        if retry_after is not None:
            raise Overloaded(retry_after)
        return state

    async def submit(self, value: Any) -> Any:
        """Queue one request's value; resolves to this request's slice of the batch output."""
        size = batch_values.batch_size(value, self._batch_dim)
        if size == 0:  # no item, no output item: the model is not called
            return []
        state = self.admit(size)
        # Before the first timed batch there is no prediction to be late against.
        expected_done = None
        if self._policy.latency.observations:
            expected_done = state.now + self._policy.predicted_time_in_server(state, size)
        key = batch_values.shape_key(value, self._batch_dim)
        request = _Request(value, size, key, state.now, asyncio.get_running_loop().create_future())
        if not self._queue and not self._running and self._policy.runs_on_loop(size):
            await self._run_lone(request)
        else:
            self._enqueue(request)
        try:
            return await request.future
        finally:  # here, not when the batch settles: waking this task up is part of the answer's time
            if expected_done is not None:
                self._policy.latency.observe_lateness(self._clock() - expected_done)

    def _enqueue(self, request: _Request, first: bool = False) -> None:
        if first:
            self._queue.appendleft(request)
        else:
            self._queue.append(request)
        self._queued_items += request.size
        self._idle.clear()
        self._schedule_pump()

    async def _run_lone(self, request: _Request) -> None:
        """A short request at an idle dispatcher runs in its own task, with no queue or pump in between.

        It first yields one loop turn, holding the model as if its batch ran: requests already
        read but not yet queued then queue behind it. If any did, it heads their batch instead.
        """
        hold = (request.arrival, request.size)
        self._running.append(hold)
        self._idle.clear()
        try:
            await asyncio.sleep(0)
        finally:
            self._running.remove(hold)
            if not self._queue:
                self._idle.set()
        if self._queue:
            self._enqueue(request, first=True)
        else:
            self._run_here([_Part(request, 0, request.size)])

    def _schedule_pump(self) -> None:
        """Look at the queue once the loop has read every request already waiting on its sockets:
        requests arriving together share a batch, and nobody waits on a timer."""
        if not self._pump_scheduled:
            self._pump_scheduled = True
            asyncio.get_running_loop().call_soon(self._pump, self._clock())

    def _pump(self, asked_at: float | None = None) -> None:
        if asked_at is not None:  # one turn of the loop since: how long a request waits to be read
            self._policy.latency.observe_loop_lag(self._clock() - asked_at)
        self._pump_scheduled = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while True:
            step = self._policy.next_step(self._state())
            if not step.now:
                if step.wake_at is not None:
                    delay = max(0.0, step.wake_at - self._clock())
                    self._timer = asyncio.get_running_loop().call_later(delay, self._pump)
                return
            here = self._policy.runs_on_loop(min(self._queued_items, self._policy.max_batch_size))
            if here and self._still_arriving():
                self._schedule_pump()
                return
            parts = self._take_batch()
            if self._backlog_since is not None:
                self._policy.latency.observe_gap(self._clock() - self._backlog_since)
                self._backlog_since = None
            if here:
                self._run_here(parts)
                return
            self._start(parts)

    def _still_arriving(self) -> bool:
        """True every other look: before running a lone request here, look again after the loop's next turn.

        A batch run on the loop's thread stops it reading: first let the requests already read
        but not yet queued (their tasks run after this callback) join it. Costs one loop turn.
        """
        self._looked_once = not self._looked_once
        return self._looked_once

    def _take_batch(self) -> list[_Part]:
        """Up to ``max_batch_size`` items, in arrival order, all shaped like the oldest request."""
        room = self._policy.max_batch_size
        key = self._queue[0].key
        parts: list[_Part] = []
        kept: deque[_Request] = deque()
        while self._queue and room:
            request = self._queue.popleft()
            if request.key != key:
                kept.append(request)
                continue
            count = min(room, request.size - request.taken)
            parts.append(_Part(request, request.taken, request.taken + count))
            request.taken += count
            room -= count
            self._queued_items -= count
            if request.taken < request.size:
                kept.append(request)
        kept.extend(self._queue)
        self._queue = kept
        return parts

    def _run_here(self, parts: list[_Part]) -> None:
        """Run one batch on the loop's thread, then go back to reading sockets before the next."""
        size = sum(part.stop - part.start for part in parts)
        began = self._clock()
        pieces, run = self._run_parts(parts)
        self._settle(parts, size, pieces, self._clock() - began, run, ran_here=True)

    def _start(self, parts: list[_Part]) -> None:
        """Run one batch on a worker thread."""
        size = sum(part.stop - part.start for part in parts)
        started = (self._clock(), size)
        self._running.append(started)
        loop = asyncio.get_running_loop()
        outcome = loop.run_in_executor(self._executor, self._run_parts, parts)
        outcome.add_done_callback(lambda done: self._finish(parts, started, done))

    def _finish(self, parts: list[_Part], started: tuple[float, int], done: asyncio.Future[Any]) -> None:
        self._running.remove(started)
        try:
            pieces, run = done.result()
        except BaseException as exc:  # the executor itself failed (e.g. shut down)
            pieces, run = [exc] * len(parts), None
        # Timed on the loop's clock, hand-offs to and from the worker included: what the queue waits.
        self._settle(parts, started[1], pieces, self._clock() - started[0], run, ran_here=False)

    def _run_parts(self, parts: list[_Part]) -> tuple[list[Any], _RunTime | None]:
        """One model call for the batch, and how long it ran.

        On failure, one call per request: then untimed (None), as that is not a batch's cost.
        """
        dim = self._batch_dim
        values = [batch_values.take(p.request.value, p.start, p.stop, dim) for p in parts]
        began = _clocks()
        try:
            output = self._run_batch(batch_values.concat(values, dim))
            pieces: list[Any] = batch_values.split(output, [p.stop - p.start for p in parts], dim)
        except Exception as exc:
            if len(parts) > 1:
                return [self._run_one_request(value) for value in values], None
            pieces = [exc]
        return pieces, _RunTime.between(began, _clocks())

    def _run_one_request(self, value: Any) -> Any:
        try:
            output = self._run_batch(value)
            return batch_values.split(output, [batch_values.batch_size(value, self._batch_dim)], self._batch_dim)[0]
        except Exception as exc:
            return exc

    def _settle(
        self, parts: list[_Part], size: int, pieces: list[Any], seconds: float, run: _RunTime | None, *, ran_here: bool
    ) -> None:
        """Answer a finished batch's requests, learn from its timing (if timed), and look at the queue again."""
        if run is not None:
            self._policy.latency.observe(size, seconds)
            self._policy.latency.observe_run(size, run.alone, run.cpu_share)
            if self._on_batch is not None:
                self._on_batch(size, seconds)
        for part, piece in zip(parts, pieces, strict=True):
            part.request.settle(part.start, part.stop, piece, self._batch_dim)
        if self._queue:
            self._backlog_since = self._clock()
            if ran_here:
                self._schedule_pump()  # read the sockets first: late arrivals join the next batch
            else:
                self._pump()
        elif not self._running:
            self._idle.set()

    async def drain(self) -> None:
        """Wait until every queued and running request has been answered."""
        await self._idle.wait()

    def close(self) -> None:
        """Release the worker threads once drained (callers drain first)."""
        if self._timer is not None:
            self._timer.cancel()
        self._executor.shutdown(wait=False)
