"""One API's own event loop, on a worker thread: where its ``async def`` handlers and async generators run.

Never the server's loop: a blocking call inside an async handler (``time.sleep``, a sync client) holds this
API's loop only, while the server's loop keeps answering probes, ``/metrics`` and the other APIs. Cancelling the
caller's future (the client left, the deadline passed) cancels the handler's task at its next ``await``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from bento_jupyter.server.http_errors import carried

T = TypeVar("T")


class HandlerLoop:
    """An event loop on a daemon thread of its own, started at the first call; ``close()`` ends it."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> asyncio.Future[T]:
        """``coroutine`` running on this loop, as a future of the calling loop (cancelling it cancels the task).

        What the coroutine raises that no future may carry as itself (SystemExit, KeyboardInterrupt, a
        CancelledError of its own while nobody cancelled it) comes back as HandlerRaised: this loop lives on."""
        return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(_guarded(coroutine), self._started()))

    def _started(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                threading.Thread(
                    target=_serve, args=(self._loop,), name=f"bento-{self._name}-async", daemon=True
                ).start()
            return self._loop

    def close(self) -> None:
        """Cancel what still runs there and end the thread (callers drain first)."""
        with self._lock:
            loop, self._loop = self._loop, None
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)


async def _guarded(coroutine: Coroutine[Any, Any, T]) -> T:
    try:
        return await coroutine
    except Exception:
        raise
    except BaseException as exc:
        task = asyncio.current_task()
        if isinstance(exc, asyncio.CancelledError) and task is not None and task.cancelling():
            raise  # really cancelled: the client left, the deadline passed, the loop closes
        raise carried(exc) from exc


def _serve(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
        left = asyncio.all_tasks(loop)
        for task in left:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()
