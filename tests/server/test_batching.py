"""The dispatcher on a real event loop: merging, splitting, isolation of bad requests, shedding."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from bento_jupyter.server.dispatch.batcher import BatchDispatcher
from bento_jupyter.server.dispatch.policy import BatchPolicy, LatencyModel
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


def test_a_lone_request_runs_at_once_on_a_worker_without_waiting_a_loop_turn():
    """``alone`` (the server knows no other request is being read): an idle model gets the request before the
    event loop turns again, still on a worker thread."""
    called = threading.Event()
    threads = []

    def model(batch):
        threads.append(threading.get_ident())
        called.set()
        return batch * 2

    async def go():
        lone = asyncio.ensure_future(dispatcher(model).submit(np.array([[1.0]]), alone=True))
        await asyncio.sleep(0)  # the request's task has run up to its wait for the answer
        started = called.wait(5)  # the loop is held here: only a batch already handed to a worker can run
        return started, (await lone).tolist(), threading.get_ident()

    started, answer, loop_thread = asyncio.run(go())
    assert started and answer == [[2.0]] and threads and loop_thread not in threads


def test_requests_arriving_alone_while_a_batch_runs_share_the_next_one():
    model = RecordingModel()

    async def go():
        d = dispatcher(model)
        model.gate.clear()
        first = asyncio.ensure_future(d.submit(np.array([[0.0]]), alone=True))
        await asyncio.sleep(0.05)
        rest = [asyncio.ensure_future(d.submit(np.array([[float(i)]]), alone=True)) for i in range(1, 4)]
        await asyncio.sleep(0.01)
        model.gate.set()
        return await first, await asyncio.gather(*rest)

    first, rest = asyncio.run(go())
    assert first.tolist() == [[0.0]] and [r.tolist() for r in rest] == [[[2.0 * i]] for i in range(1, 4)]
    assert model.batches == [1, 3]


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


def test_handlers_run_on_worker_threads_with_no_running_event_loop():
    seen = []

    def model(batch):
        try:
            asyncio.get_running_loop()
            running = True
        except RuntimeError:
            running = False
        seen.append((threading.get_ident(), running, asyncio.run(asyncio.sleep(0, "own loop"))))
        return batch

    async def go():
        d = dispatcher(model, latency=LatencyModel(warmup=0))
        for _ in range(3):  # a lone fast request, then the same again once the model is known to be fast
            await d.submit(np.ones((1, 1)))
        await asyncio.gather(*(d.submit(np.ones((1, 1))) for _ in range(8)))
        return threading.get_ident()

    loop_thread = asyncio.run(go())
    assert seen and all(thread != loop_thread and not running and own == "own loop" for thread, running, own in seen)


def test_a_slow_batch_does_not_stop_the_loop():
    def model(batch):
        time.sleep(0.3)
        return batch

    async def go():
        d = dispatcher(model)
        slow = asyncio.ensure_future(d.submit(np.ones((1, 1))))
        ticks = 0
        while not slow.done():
            await asyncio.sleep(0.01)
            ticks += 1
        return ticks

    assert asyncio.run(go()) >= 10  # the loop kept turning while the handler slept


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


STEPS = ["take", "concat", "split", "batch_size"]


@pytest.mark.parametrize("step", [*STEPS, "call"])
@pytest.mark.parametrize("fail_on_call", [1, 2, 3])
def test_a_fault_in_any_step_of_a_batch_answers_every_request(monkeypatch, step, fail_on_call):
    """Slicing, merging, the model call, splitting or joining a large request's pieces fails on its n-th use:
    every request still gets an answer (a result or the error), and the dispatcher serves the next ones."""
    from bento_jupyter.service import batch_values

    calls = {"n": 0}

    def faulty(original):
        def step_once(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == fail_on_call:
                raise RuntimeError(f"injected fault in {step}")
            return original(*args, **kwargs)

        return step_once

    model = RecordingModel()
    if step == "call":
        d = dispatcher(faulty(model), max_batch_size=4)
    else:
        d = dispatcher(model, max_batch_size=4)
        monkeypatch.setattr(batch_values, step, faulty(getattr(batch_values, step)))
    values = [np.full((size, 1), float(i)) for i, size in enumerate([1, 6, 2, 1, 3, 9])]

    async def go():
        pending = [asyncio.ensure_future(d.submit(v)) for v in values]
        _, not_done = await asyncio.wait(pending, timeout=5)
        assert not not_done, f"{len(not_done)} requests never answered"
        monkeypatch.undo()
        after = await asyncio.wait_for(d.submit(np.ones((2, 1))), 5)
        return [t.exception() or t.result() for t in pending], after

    answers, after = asyncio.run(go())
    for value, answer in zip(values, answers, strict=True):
        if not isinstance(answer, BaseException):
            assert answer.tolist() == (value * 2).tolist()
    assert calls["n"] >= fail_on_call  # the fault did happen
    assert after.tolist() == [[2.0], [2.0]]
