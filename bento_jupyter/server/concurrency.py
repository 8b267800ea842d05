"""One plain (non-batchable) API's bounded concurrency: its own slots, its own threads, its own queue.

A hung or slow handler uses up the slots of its API and nothing else: other APIs, the probes and
``/metrics`` are answered by the event loop and by their own threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from bento_jupyter.server.deadlines import within
from bento_jupyter.server.handler_loop import HandlerLoop
from bento_jupyter.server.http_errors import ClientDisconnected, DeadlineExceeded, Overloaded, carried

RETRY_AFTER_S = 1.0
RECENT_CALLS = 16  # the calls whose fastest one tells how long a call takes at least
GONE_POLL_S = 0.05  # how often a running async call asks whether its client has left


def default_max_concurrency() -> int:
    """Calls of one sync API at once when ``@api`` does not say: what asyncio's default executor had for all."""
    return min(32, (os.cpu_count() or 1) + 4)


class HandlerPool:
    """Runs one API's calls, at most ``max_concurrency`` at once; ``max_waiting`` more may wait for a slot.

    Sync calls run on the API's own daemon threads (started as needed), async ones on the API's own event
    loop (a HandlerLoop on one more thread), never on the server's loop. A call beyond the waiting room is
    refused at once with 503. A call whose client left, whose deadline passed, or whose deadline leaves less
    time than the fastest of the API's recent calls took is answered without starting (504 for a deadline):
    never computed late. A call still running at its deadline is answered 504 then; a sync one keeps its slot
    until the handler really returns (a thread cannot be stopped), an async one is cancelled at its next
    ``await``.
    """

    def __init__(self, name: str, max_concurrency: int, max_waiting: int) -> None:
        self.name = name
        self.max_concurrency = max_concurrency
        self.max_waiting = max_waiting
        self._busy = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._async_loop = HandlerLoop(name)  # started at the first async call
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._threads = 0
        self._recent: deque[float] = deque(maxlen=RECENT_CALLS)  # seconds the latest finished calls took
        self._idle = asyncio.Event()  # set while no call runs or waits: what a retired pool waits for
        self._idle.set()
        self._late = f"{name}() did not answer within the request's deadline"

    def admit(self) -> None:
        """Raise Overloaded when a new call could neither run nor wait (asked before the body is read)."""
        if self.full():
            raise Overloaded(RETRY_AFTER_S)

    def full(self) -> bool:
        """Whether a new call could neither run nor wait."""
        return self._busy >= self.max_concurrency and len(self._waiters) >= self.max_waiting

    async def call_sync(self, func: Callable[[], Any], deadline: float | None, gone: Callable[[], bool] | None) -> Any:
        """``func()`` on one of this API's threads, within ``deadline`` (``time.monotonic`` seconds), in a copy of
        the caller's context (its context variables, a task's ``current_task``), as an async handler gets."""
        await self._acquire(deadline, gone)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        context = contextvars.copy_context()

        def job() -> None:
            began = time.perf_counter()
            try:
                outcome: tuple[bool, Any] = (True, context.run(func))
            except BaseException as exc:  # the handler's error goes to its caller; the thread stays
                outcome = (False, carried(exc))
            took = time.perf_counter() - began
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
                loop.call_soon_threadsafe(self._settle, future, outcome, took)

        if self._threads < self._busy:
            self._threads += 1
            threading.Thread(target=self._work, name=f"bento-{self.name}-{self._threads}", daemon=True).start()
        self._jobs.put(job)
        return await within(future, deadline, self._late)

    async def call_async(
        self, call: Callable[[], Coroutine[Any, Any, Any]], deadline: float | None, gone: Callable[[], bool] | None
    ) -> Any:
        """``await call()`` on this API's own event loop, cancelled at ``deadline`` or once ``gone()`` turns true
        (ClientDisconnected), at the handler's next ``await``."""
        await self._acquire(deadline, gone)
        began = time.perf_counter()
        try:
            result = await within(_unless_gone(self._async_loop.run(call()), gone), deadline, self._late)
        except (DeadlineExceeded, ClientDisconnected):
            raise
        except Exception:
            self._recent.append(time.perf_counter() - began)
            raise
        else:
            self._recent.append(time.perf_counter() - began)
            return result
        finally:
            self._release()

    def _settle(self, future: asyncio.Future[Any], outcome: tuple[bool, Any], took: float) -> None:
        self._recent.append(took)
        self._release()
        if not future.done():
            ok, value = outcome
            future.set_result(value) if ok else future.set_exception(value)

    async def _acquire(self, deadline: float | None, gone: Callable[[], bool] | None) -> None:
        if self._busy < self.max_concurrency and not self._waiters:
            self._busy += 1
            self._idle.clear()
            self._start_in_time(deadline)
            return
        if len(self._waiters) >= self.max_waiting:
            raise Overloaded(RETRY_AFTER_S)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await within(waiter, deadline, f"{self.name}() had no free slot before the request's deadline")
        except BaseException:
            if waiter.done() and not waiter.cancelled():  # the slot was handed over just as we gave up
                self._release()
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)
            raise
        if gone is not None and gone():
            self._release()
            raise ClientDisconnected()
        self._start_in_time(deadline)

    def _start_in_time(self, deadline: float | None) -> None:
        """Give the slot just taken back, with DeadlineExceeded, when ``deadline`` leaves less time than the
        fastest recent call took (or none at all): such a call would be computed late."""
        if deadline is None:
            return
        left = deadline - time.monotonic()
        if left > 0 and (not self._recent or left >= min(self._recent)):
            return
        self._release()
        if left <= 0:
            raise DeadlineExceeded(f"{self.name}() had no free slot before the request's deadline")
        raise DeadlineExceeded(
            f"{self.name}() cannot answer within the request's deadline ({left * 1000:.0f} ms left; its recent"
            f" calls took at least {min(self._recent) * 1000:.0f} ms): refused before computing"
        )

    def _release(self) -> None:
        """Hand the slot to the oldest waiter still waiting, or free it."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._busy -= 1
        if not self._busy:
            self._idle.set()

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            job()

    async def drain(self) -> None:
        """Return once every call admitted so far has run, those still waiting for a slot included (a retired
        pool's waiters finish on its handler, as a batch queue's do)."""
        await self._idle.wait()

    def close(self) -> None:
        """Let each thread finish its current call and exit (callers drain first)."""
        for _ in range(self._threads):
            self._jobs.put(None)
        self._async_loop.close()


async def _unless_gone(running: asyncio.Future[Any], gone: Callable[[], bool] | None) -> Any:
    """``running``'s result, cancelling it (ClientDisconnected) once ``gone()`` turns true, or when this is
    cancelled (a deadline)."""
    try:
        while not running.done():
            await asyncio.wait((running,), timeout=None if gone is None else GONE_POLL_S)
            if not running.done() and gone is not None and gone():
                raise ClientDisconnected()
        return running.result()
    finally:
        running.cancel()  # no-op once it is done
