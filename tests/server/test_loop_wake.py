"""LoopWaker: calls posted from worker threads run on the event loop, in order, and none after close."""

from __future__ import annotations

import asyncio
import threading

from bento_jupyter.server.dispatch.loop_wake import LoopWaker


def test_calls_posted_from_threads_run_on_the_loop_thread_in_order():
    async def go():
        loop = asyncio.get_running_loop()
        waker = LoopWaker(loop)
        seen: list[tuple[int, int, bool]] = []
        done = loop.create_future()

        def record(thread: int, i: int) -> None:
            seen.append((thread, i, threading.current_thread() is threading.main_thread()))
            if len(seen) == 400:
                done.set_result(None)

        def post_many(thread: int) -> None:
            for i in range(100):
                waker.post(record, thread, i)

        workers = [threading.Thread(target=post_many, args=(t,)) for t in range(4)]
        for worker in workers:
            worker.start()
        await asyncio.wait_for(done, 5)
        waker.close()
        return seen

    seen = asyncio.run(go())
    assert all(on_loop for _, _, on_loop in seen)
    for thread in range(4):  # each poster's calls in the order it posted them
        assert [i for t, i, _ in seen if t == thread] == list(range(100))


def test_a_post_after_close_is_dropped_and_writes_nothing():
    async def go():
        waker = LoopWaker(asyncio.get_running_loop())
        waker.close()
        ran = []
        waker.post(ran.append, 1)  # a worker finishing after its dispatcher closed
        await asyncio.sleep(0.01)
        return ran

    assert asyncio.run(go()) == []


def test_a_failing_call_does_not_strand_the_calls_after_it():
    async def go():
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _loop, _context: None)
        waker = LoopWaker(loop)
        done = loop.create_future()

        def fail() -> None:
            raise RuntimeError("boom")

        threading.Thread(target=lambda: (waker.post(fail), waker.post(done.set_result, "after"))).start()
        answer = await asyncio.wait_for(done, 5)
        waker.close()
        return answer

    assert asyncio.run(go()) == "after"
