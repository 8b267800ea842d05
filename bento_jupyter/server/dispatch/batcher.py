"""The batch dispatcher: merges concurrent calls of one batchable API into single model calls."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from bento_jupyter.server.dispatch.loop_wake import LoopWaker
from bento_jupyter.server.dispatch.policy import BatchPolicy, Decision, Placement, QueueState
from bento_jupyter.server.http_errors import ClientDisconnected, DeadlineExceeded, Overloaded, carried
from bento_jupyter.service import batch_values
from bento_jupyter.service.task_context import TaskRef, batch_of, current_task

BatchObserver = Callable[[int, float], None]
# A request that waited less than this is not asked whether its client is still there: it almost
# surely is, and asking costs more than the rare lost row.
ASK_CLIENT_AFTER_S = 0.001
_RUN, _REFUSE, _LATE = Placement.RUN, Placement.REFUSE, Placement.LATE  # a global is quicker than an enum lookup


@dataclass(eq=False, slots=True)
class _Request:
    value: Any
    size: int
    key: Any
    arrival: float
    future: asyncio.Future[Any]
    deadline: float | None = None  # on the dispatcher's clock: past it, the answer is of no use
    gone: Callable[[], bool] | None = None  # whether the client has disconnected
    taken: int = 0  # items already handed to a batch (a large request spans several)
    settled: int = 0  # items whose batch has answered
    pieces: dict[int, Any] | None = None  # start offset -> output piece, once a request spans several batches
    error: BaseException | None = None
    task: TaskRef | None = None  # the task this request answers, if any: cancel_requested() in its batch asks it

    def settle(self, start: int, stop: int, outcome: Any, batch_dim: int) -> None:
        """Record one batch's answer for items ``start:stop``; answer the client once all are back."""
        if isinstance(outcome, BaseException):
            self.error = self.error or outcome
        elif stop - start == self.size:  # the whole request in one batch: its piece is the answer
            if not self.future.done():
                self.future.set_result(outcome)
            return
        else:
            if self.pieces is None:
                self.pieces = {}
            self.pieces[start] = outcome
        self.settled += stop - start
        if self.settled < self.size or self.future.done():
            return
        if self.error is None:
            pieces = self.pieces or {}
            try:
                answer = batch_values.concat([pieces[k] for k in sorted(pieces)], batch_dim)
            except Exception as exc:  # the pieces of one request's batches do not join
                self.error = exc
            else:
                self.future.set_result(answer)
                return
        self.future.set_exception(self.error)

    def fail(self, error: BaseException) -> None:
        """Answer with ``error`` now, whatever is still out (the dispatcher itself failed)."""
        if not self.future.done():
            self.future.set_exception(error)

    def dropped(self, now: float, batch_end: float) -> BaseException | None:
        """Why this request, none of it batched yet, must leave the queue instead of joining a batch
        expected to end at ``batch_end``: its client left, or its deadline would pass first."""
        if self.deadline is not None and batch_end > self.deadline:
            return DeadlineExceeded("the request's deadline passed while it waited: dropped before computing")
        if self.gone is not None and now - self.arrival >= ASK_CLIENT_AFTER_S and self.gone():
            return ClientDisconnected()
        return None


class _Part(NamedTuple):
    request: _Request
    start: int
    stop: int


class _Workers:
    """Threads that run batches off the event loop: the loop hands a batch over with one put on a
    ``SimpleQueue`` and is woken once per finished batch by a ``LoopWaker``."""

    def __init__(self, count: int, name: str) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._work, name=f"bento-{name}-{i}", daemon=True) for i in range(count)
        ]
        for thread in self._threads:
            thread.start()

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                job()
            except BaseException:  # a job answers its own requests; the thread stays for the next one
                continue

    def run(self, job: Callable[[], None]) -> None:
        self._jobs.put(job)

    def close(self) -> None:
        """Let each thread finish its current job and exit."""
        for _ in self._threads:
            self._jobs.put(None)


class BatchDispatcher:
    """Queues requests of one API, runs merged batches on worker threads, answers each request.

    ``run_batch`` is the handler: it takes one merged value and returns one output item per input
    item. It never runs on the event loop's thread, so the loop keeps reading, refusing and answering
    while a batch runs, and the handler sees no running event loop. Whatever fails (slicing, merging,
    the call, splitting), every request of the batch is answered.
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
        self._overloaded_until = float("-inf")  # the policy's overload window
        self._workers = _Workers(policy.max_concurrency, name)
        self._waker: LoopWaker | None = None  # bound to the loop of the first batch
        self._idle = asyncio.Event()
        self._idle.set()

    def _state(self) -> QueueState:
        now = self._clock()
        if not self._queue and not self._running:  # the common case at low load, kept cheap
            return QueueState(now, 0, now, 0, 0.0, self._overloaded_until)
        bound = self._policy.latency.bound
        remaining = min((start + bound(size) - now for start, size in self._running), default=0.0)
        oldest = self._queue[0].arrival if self._queue else now
        return QueueState(
            now, self._queued_items, oldest, len(self._running), max(0.0, remaining), self._overloaded_until
        )

    def _place(self, size: int, deadline: float | None) -> tuple[QueueState, Decision]:
        """The policy's decision for a request of ``size`` items arriving now; keeps an overload window it opens."""
        state = self._state()
        decision = self._policy.decide(state, size, deadline)
        if decision.overloaded_until is not None:
            self._overloaded_until = decision.overloaded_until
        return state, decision

    def admit(self, size: int = 1, deadline: float | None = None) -> QueueState:
        """Raise Overloaded when a request of ``size`` items would not be answered within its budget,
        DeadlineExceeded when not by ``deadline`` (on this dispatcher's clock)."""
        return self._admission(size, deadline)[0]

    def _admission(self, size: int, deadline: float | None) -> tuple[QueueState, Decision]:
        state, decision = self._place(size, deadline)
        if decision.placement is _REFUSE:
            raise Overloaded(decision.retry_after or 0.0)
        if decision.placement is _LATE:
            raise DeadlineExceeded("the request's deadline cannot be met: refused before computing")
        return state, decision

    def refusal_now(self) -> float | None:
        """The Retry-After seconds when a one-item request would be refused now, else None (admits nothing)."""
        decision = self._place(1, None)[1]
        return decision.retry_after if decision.placement is _REFUSE else None

    async def submit(
        self,
        value: Any,
        deadline: float | None = None,
        gone: Callable[[], bool] | None = None,
        *,
        alone: bool = False,
    ) -> Any:
        """Queue one request's value; resolves to this request's slice of the batch output.

        ``deadline`` (this dispatcher's clock) and ``gone`` (whether the client has left) let a waiting
        request be dropped before it is batched: it then raises DeadlineExceeded or ClientDisconnected.
        ``alone``: the caller knows that no other request is waiting to be read, so a request the policy
        runs at once need not wait one turn of the loop for others to join its batch.
        """
        size = batch_values.batch_size(value, self._batch_dim)
        if size == 0:  # no item, no output item: the model is not called
            return []
        state, decision = self._admission(size, deadline)
        # Before the first timed batch there is no prediction to be late against.
        expected_done = None
        if self._policy.latency.observations:
            expected_done = state.now + self._policy.predicted_time_in_server(state, size)
        key = batch_values.shape_key(value, self._batch_dim)
        loop = asyncio.get_running_loop()
        request = _Request(value, size, key, state.now, loop.create_future(), deadline, gone, task=current_task.get())
        self._idle.clear()
        if alone and decision.placement is _RUN and not self._queue and size <= self._policy.max_batch_size:
            request.taken = size  # a batch of its own, now: nothing is queued and nobody else is arriving
            self._start([_Part(request, 0, size)], loop)
        else:
            self._queue.append(request)
            self._queued_items += size
            if not self._pump_scheduled:
                self._schedule_pump(loop)
        answer = await request.future
        if expected_done is not None:  # here, not when the batch settles: waking this task up is part of its time
            now = self._clock()
            self._policy.latency.observe_lateness(now - expected_done, now)
        return answer

    def _schedule_pump(self, loop: asyncio.AbstractEventLoop) -> None:
        """Look at the queue once the loop has read every request already waiting on its sockets:
        requests arriving together share a batch, and nobody waits on a timer."""
        self._pump_scheduled = True
        loop.call_soon(self._pump, self._clock())

    def _pump(self, asked_at: float | None = None) -> None:
        if asked_at is not None:  # one turn of the loop since: how long a request waits to be read
            now = self._clock()
            self._policy.latency.observe_loop_lag(now - asked_at, now)
        self._pump_scheduled = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while True:
            step = self._policy.decide(self._state())
            if step.placement is not _RUN:
                if step.wake_at is not None:
                    delay = max(0.0, step.wake_at - self._clock())
                    self._timer = asyncio.get_running_loop().call_later(delay, self._pump)
                return
            parts = self._take_batch()
            if not parts:  # everything it looked at had left the queue
                if not self._queue and not self._running:
                    self._idle.set()
                continue
            if self._backlog_since is not None:
                self._policy.latency.observe_gap(self._clock() - self._backlog_since)
                self._backlog_since = None
            self._start(parts)
            if not self._queue:  # nothing left to place: the policy would say WAIT, with no wake-up
                return

    def _take_batch(self) -> list[_Part]:
        """Up to ``max_batch_size`` items, in arrival order, all shaped like the oldest request."""
        room = self._policy.max_batch_size
        now = self._clock()
        batch_items = min(room, self._queued_items)
        batch_end: float | None = None  # predicted only when a request has a deadline to hold it against
        parts: list[_Part] = []
        kept: deque[_Request] = deque()
        key = None
        while self._queue and room:
            request = self._queue.popleft()
            if not request.future.done() and not request.taken:
                if batch_end is None and request.deadline is not None:
                    batch_end = now + self._policy.latency.predict(batch_items)
                reason = request.dropped(now, now if batch_end is None else batch_end)
                if reason is not None:
                    request.future.set_exception(reason)
            if request.future.done():  # cancelled, its client gone or its deadline past: never computed
                self._queued_items -= request.size - request.taken
                continue
            if key is None:
                key = request.key
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
        if kept:  # requests left for a later batch go back to the head of the queue, in arrival order
            kept.extend(self._queue)
            self._queue = kept
        return parts

    def _start(self, parts: list[_Part], loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Hand one batch to a worker thread; it calls ``_finish`` back on the loop (the running one: callers
        that hold it pass it, since asking for it costs a ``getpid`` system call on Python 3.11)."""
        size = parts[0].stop - parts[0].start if len(parts) == 1 else sum(part.stop - part.start for part in parts)
        started = (self._clock(), size)
        self._running.append(started)
        waker = self._loop_waker(loop or asyncio.get_running_loop())

        def job() -> None:
            pieces, timed = self._run_parts(parts)
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
                waker.post(self._finish, parts, started, pieces, timed)

        try:
            self._workers.run(job)
        except Exception as exc:
            self._finish(parts, started, [exc] * len(parts), False)

    def _loop_waker(self, loop: asyncio.AbstractEventLoop) -> LoopWaker:
        if self._waker is None or self._waker.loop is not loop:
            if self._waker is not None:
                self._waker.close()
            self._waker = LoopWaker(loop)
        return self._waker

    def _finish(self, parts: list[_Part], started: tuple[float, int], pieces: list[Any], timed: bool) -> None:
        """Answer a finished batch's requests, learn from its timing, and look at the queue again."""
        self._running.remove(started)
        try:
            if timed:  # on the loop's clock, hand-offs to and from the worker included: what the queue waits
                now = self._clock()
                seconds = now - started[0]
                self._policy.latency.observe(started[1], seconds, now)
                if self._on_batch is not None:
                    self._on_batch(started[1], seconds)
            for part, piece in zip(parts, pieces, strict=True):
                part.request.settle(part.start, part.stop, piece, self._batch_dim)
        except Exception as exc:  # whatever went wrong, nobody of this batch is left waiting
            for part in parts:
                part.request.fail(exc)
        if self._queue:
            self._backlog_since = self._clock()
            self._pump()
        elif not self._running:
            self._idle.set()

    def _run_parts(self, parts: list[_Part]) -> tuple[list[Any], bool]:
        """On a worker: one model call for the batch, and whether it is timed; an output piece or an
        exception per part.

        On failure, one call per request: then untimed, as that is not a batch's cost.
        """
        dim = self._batch_dim
        try:
            if len(parts) == 1 and parts[0].stop - parts[0].start == parts[0].request.size:  # one whole request
                value = parts[0].request.value
            else:
                values = [batch_values.take(p.request.value, p.start, p.stop, dim) for p in parts]
                value = batch_values.concat(values, dim)
            output = self._run_for(parts, value)
            return batch_values.split(output, [p.stop - p.start for p in parts], dim), True
        except BaseException as exc:  # SystemExit from a handler too: its requests still get an answer
            if len(parts) == 1:
                return [carried(exc)], True
        return [self._run_one_part(part) for part in parts], False

    def _run_one_part(self, part: _Part) -> Any:
        try:
            value = batch_values.take(part.request.value, part.start, part.stop, self._batch_dim)
            output = self._run_for([part], value)
            return batch_values.split(output, [part.stop - part.start], self._batch_dim)[0]
        except BaseException as exc:
            return carried(exc)

    def _run_for(self, parts: list[_Part], value: Any) -> Any:
        """The handler's call for ``parts``; when all of them are tasks, its ``cancel_requested()`` turns true once
        every one of them is canceled (README: Tasks)."""
        tasks = batch_of([part.request.task for part in parts])
        if tasks is None:
            return self._run_batch(value)
        token = current_task.set(tasks)
        try:
            return self._run_batch(value)
        finally:
            current_task.reset(token)

    async def drain(self) -> None:
        """Wait until every queued and running request has been answered."""
        await self._idle.wait()

    def close(self) -> None:
        """Release the worker threads once drained (callers drain first)."""
        if self._timer is not None:
            self._timer.cancel()
        self._workers.close()
        if self._waker is not None:
            self._waker.close()
