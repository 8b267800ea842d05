"""The dispatcher on a real event loop: merging, splitting, isolation of bad requests, shedding."""

from __future__ import annotations

import asyncio
import threading

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


async def held_then_released(model, d, values):
    """Submit while the model is held on a first request, so the rest queue up together."""
    model.gate.clear()
    first = asyncio.ensure_future(d.submit(np.array([[0.0]])))
    await asyncio.sleep(0.05)
    rest = [asyncio.ensure_future(d.submit(v)) for v in values]
    await asyncio.sleep(0.01)
    model.gate.set()
    return await first, await asyncio.gather(*rest, return_exceptions=True)


def test_lone_request_is_answered_alone():
    model = RecordingModel()

    async def go():
        return await dispatcher(model).submit(np.array([[1.0, 2.0]]))

    assert asyncio.run(go()).tolist() == [[2.0, 4.0]]
    assert model.batches == [1]


def test_requests_queued_behind_a_running_batch_are_merged_into_one_call():
    model = RecordingModel()
    d = dispatcher(model)
    values = [np.array([[float(i)]]) for i in range(1, 11)]
    _, answers = asyncio.run(held_then_released(model, d, values))
    assert [a.tolist() for a in answers] == [[[2.0 * i]] for i in range(1, 11)]
    assert model.batches == [1, 10]


def test_max_batch_size_counts_items_and_large_requests_are_split():
    model = RecordingModel()
    d = dispatcher(model, max_batch_size=4)
    big = np.arange(10, dtype=float).reshape(10, 1)
    _, (answer,) = asyncio.run(held_then_released(model, d, [big]))
    assert answer.tolist() == (big * 2).tolist()
    assert model.batches == [1, 4, 4, 2]


def test_a_failing_request_does_not_fail_its_batch_mates():
    model = RecordingModel(fail_on=-1.0)
    d = dispatcher(model)
    values = [np.array([[1.0]]), np.array([[-1.0]]), np.array([[3.0]])]
    _, answers = asyncio.run(held_then_released(model, d, values))
    assert answers[0].tolist() == [[2.0]] and answers[2].tolist() == [[6.0]]
    assert isinstance(answers[1], ValueError)


def test_differently_shaped_requests_are_not_merged():
    model = RecordingModel()
    d = dispatcher(model)
    values = [np.ones((1, 2)), np.ones((1, 3)), np.ones((1, 2))]
    _, answers = asyncio.run(held_then_released(model, d, values))
    assert [a.shape for a in answers] == [(1, 2), (1, 3), (1, 2)]
    assert sorted(model.batches) == [1, 1, 2]


def test_wrong_output_length_is_an_error_not_a_silent_mismatch():
    d = dispatcher(lambda batch: batch[:1])

    async def go():
        return await d.submit(np.ones((3, 1)))

    with pytest.raises(ValueError, match="one output item per input item"):
        asyncio.run(go())


def test_overload_is_refused_immediately_with_retry_after():
    latency = LatencyModel(warmup=0)
    latency.observe(4, 0.040)  # every batch takes 40 ms; budget is 50 ms
    model = RecordingModel()
    d = dispatcher(model, max_batch_size=4, latency=latency)

    async def go():
        model.gate.clear()
        first = asyncio.ensure_future(d.submit(np.ones((1, 1))))
        await asyncio.sleep(0.02)
        # One batch of 4 fits behind the running one (20 ms left + 0 ahead < 50 ms) ...
        admitted = [asyncio.ensure_future(d.submit(np.ones((1, 1)))) for _ in range(4)]
        await asyncio.sleep(0.005)
        # ... a fifth would wait behind a whole 40 ms batch plus the running one.
        with pytest.raises(Overloaded) as refused:
            await d.submit(np.ones((1, 1)))
        model.gate.set()
        await asyncio.gather(first, *admitted)
        return refused.value

    refused = asyncio.run(go())
    assert refused.status == 503 and int(refused.headers["retry-after"]) >= 1
