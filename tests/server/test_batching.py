"""The dispatcher on a real event loop: merging, splitting, isolation of bad requests, shedding."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from bento_jupyter.server.batch_policy import BatchPolicy, LatencyModel
from bento_jupyter.server.batching import BatchDispatcher
from bento_jupyter.server.http_errors import Overloaded


class RecordingModel:
    """Doubles its input; records batch sizes; can be held to let a queue build up."""

    def __init__(self, fail_on: float | None = None) -> None:
        self.batches: list[int] = []
        self.gate = threading.Event()
        self.gate.set()
        self.fail_on = fail_on

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.gate.wait(5)
        self.batches.append(len(batch))
        if self.fail_on is not None and (batch == self.fail_on).any():
            raise ValueError("poisoned row")
        return batch * 2


def dispatcher(model, max_batch_size=64, latency=None, queue=1024, concurrency=1) -> BatchDispatcher:
    policy = BatchPolicy(max_batch_size, 0.050, concurrency, queue, latency or LatencyModel())
    return BatchDispatcher(model, policy)


def timed(latency: LatencyModel, size: int, seconds: float) -> None:
    """One batch of ``size`` that took ``seconds``, computing all along."""
    latency.observe(size, seconds)
    latency.observe_run(size, seconds, 1.0)


def submitted_together(d, values):
    """Submit every value in one event-loop turn, like requests read from many sockets at once."""

    async def go():
        return await asyncio.gather(*(d.submit(v) for v in values), return_exceptions=True)

    return asyncio.run(go())


def test_lone_request_is_answered_alone():
    model = RecordingModel()

    async def go():
        return await dispatcher(model).submit(np.array([[1.0, 2.0]]))

    assert asyncio.run(go()).tolist() == [[2.0, 4.0]]
    assert model.batches == [1]


def test_requests_arriving_together_are_merged_into_one_call():
    model = RecordingModel()
    values = [np.array([[float(i)]]) for i in range(1, 11)]
    answers = submitted_together(dispatcher(model), values)
    assert [a.tolist() for a in answers] == [[[2.0 * i]] for i in range(1, 11)]
    assert model.batches == [10]


def test_max_batch_size_counts_items_and_large_requests_are_split():
    model = RecordingModel()
    big = np.arange(10, dtype=float).reshape(10, 1)
    (answer,) = submitted_together(dispatcher(model, max_batch_size=4), [big])
    assert answer.tolist() == (big * 2).tolist()
    assert model.batches == [4, 4, 2]


def test_a_failing_request_does_not_fail_its_batch_mates():
    model = RecordingModel(fail_on=-1.0)
    answers = submitted_together(dispatcher(model), [np.array([[1.0]]), np.array([[-1.0]]), np.array([[3.0]])])
    assert answers[0].tolist() == [[2.0]] and answers[2].tolist() == [[6.0]]
    assert isinstance(answers[1], ValueError)


def test_differently_shaped_requests_are_not_merged():
    model = RecordingModel()
    answers = submitted_together(dispatcher(model), [np.ones((1, 2)), np.ones((1, 3)), np.ones((1, 2))])
    assert [a.shape for a in answers] == [(1, 2), (1, 3), (1, 2)]
    assert sorted(model.batches) == [1, 2]


def test_wrong_output_length_is_an_error_not_a_silent_mismatch():
    d = dispatcher(lambda batch: batch[:1])

    async def go():
        return await d.submit(np.ones((3, 1)))

    with pytest.raises(ValueError, match="one output item per input item"):
        asyncio.run(go())


def test_a_lone_short_request_runs_on_the_loop_thread_others_on_workers():
    def runs_on(concurrency, batch_seconds):
        threads = []

        def model(batch):
            threads.append(threading.current_thread().name)
            return batch

        latency = LatencyModel(warmup=0)
        timed(latency, 1, batch_seconds)

        async def go():
            await dispatcher(model, concurrency=concurrency, latency=latency).submit(np.ones((1, 1)))
            return threading.current_thread().name

        loop_thread = asyncio.run(go())
        return "loop" if threads[0] == loop_thread else threads[0]

    assert runs_on(1, 0.001) == "loop"  # 1 ms of a 50 ms budget
    assert runs_on(1, 0.040).startswith("bento-")
    assert runs_on(2, 0.001).startswith("bento-")


def test_a_lone_request_abandoned_before_it_runs_leaves_the_dispatcher_idle():
    model = RecordingModel()
    d = dispatcher(model)

    async def go():
        lone = asyncio.ensure_future(d.submit(np.array([[1.0]])))
        await asyncio.sleep(0)  # it is now yielding its one turn before running
        lone.cancel()
        await asyncio.wait_for(d.drain(), 1)
        return await d.submit(np.array([[2.0]]))

    assert asyncio.run(go()).tolist() == [[4.0]]
    assert model.batches == [1]


def test_requests_queued_behind_a_running_worker_batch_share_the_next_one():
    model = RecordingModel()
    d = dispatcher(model, concurrency=2, latency=LatencyModel(warmup=0))
    timed(d._policy.latency, 1, 0.0)  # a fast model: the spare slot does not wait for a fuller batch

    async def go():
        model.gate.clear()
        first = asyncio.ensure_future(d.submit(np.array([[0.0]])))
        await asyncio.sleep(0.05)
        rest = [asyncio.ensure_future(d.submit(np.array([[float(i)]]))) for i in range(1, 6)]
        await asyncio.sleep(0.01)
        model.gate.set()
        return await first, await asyncio.gather(*rest)

    _, answers = asyncio.run(go())
    assert [a.tolist() for a in answers] == [[[2.0 * i]] for i in range(1, 6)]
    assert model.batches == [1, 5]


def test_a_request_behind_a_full_batch_is_refused_when_both_would_exceed_the_budget():
    latency = LatencyModel(warmup=0)
    timed(latency, 4, 0.040)  # every batch takes 40 ms; the budget is 50 ms
    model = RecordingModel()
    d = dispatcher(model, max_batch_size=4, latency=latency)
    # Four requests fit the next batch (40 ms); a fifth would wait for it and then run its own (80 ms).
    answers = submitted_together(d, [np.ones((1, 1))] * 5)
    assert all(isinstance(a, np.ndarray) for a in answers[:4])
    refused = answers[4]
    assert isinstance(refused, Overloaded)
    assert refused.status == 503 and int(refused.headers["retry-after"]) >= 1
    assert model.batches == [4]


class ThreadRecordingModel:
    """Computes (spins on the CPU) or waits (sleeps) for ``seconds`` per batch; records the thread of each call."""

    def __init__(self, seconds: float, computes: bool) -> None:
        self.seconds, self.computes = seconds, computes
        self.threads: list[int] = []

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.threads.append(threading.get_ident())
        if self.computes:
            end = time.thread_time() + self.seconds
            while time.thread_time() < end:
                pass
        else:
            time.sleep(self.seconds)
        return batch


def batches_after_warmup(model: ThreadRecordingModel) -> tuple[int, list[int]]:
    """Ten rounds of 16 requests read together by a one-core dispatcher: (loop thread, callers of the last 5)."""
    policy = BatchPolicy(64, 0.050, 1, 1024, LatencyModel(), one_core=True)
    d = BatchDispatcher(model, policy)

    async def go():
        for _ in range(10):
            await asyncio.gather(*(d.submit(np.array([[1.0]])) for _ in range(16)))
        return threading.get_ident()

    loop_thread = asyncio.run(go())
    return loop_thread, model.threads[-5:]


def test_on_one_core_a_computing_handler_runs_on_the_loop_thread():
    loop_thread, callers = batches_after_warmup(ThreadRecordingModel(0.002, computes=True))
    assert callers == [loop_thread] * 5


def test_on_one_core_a_waiting_handler_still_runs_on_a_worker():
    loop_thread, callers = batches_after_warmup(ThreadRecordingModel(0.002, computes=False))
    assert callers and loop_thread not in callers  # the loop keeps reading while the handler waits
