"""The batching decisions, pinned with a fake clock: no idle waiting, bounded waits, early refusal."""

from __future__ import annotations

import pytest

from bento_jupyter.server.dispatch.policy import BatchPolicy, LatencyModel, QueueState


def trained_model(base: float = 0.002, per_item: float = 0.0001) -> LatencyModel:
    """Batches timed at ``base + per_item * n``."""
    model = LatencyModel(warmup=0)
    for size in (1, 8, 16, 32, 64, 4, 48):
        model.observe(size, base + per_item * size)
    return model


def policy(concurrency: int = 1, latency: LatencyModel | None = None, queue: int = 1024) -> BatchPolicy:
    return BatchPolicy(
        max_batch_size=64,
        max_latency_s=0.010,
        max_concurrency=concurrency,
        max_queue_items=queue,
        latency=latency or trained_model(),
    )


def state(now=100.0, queued=0, oldest=100.0, in_flight=0, remaining=0.0) -> QueueState:
    return QueueState(now, queued, oldest, in_flight, remaining)


def test_latency_model_learns_base_and_per_item_cost():
    model = trained_model(base=0.002, per_item=0.0001)
    assert model.predict(10) == pytest.approx(0.003, rel=1e-6)
    assert model.predict(100) == pytest.approx(0.012, rel=1e-6)


def test_latency_model_ignores_the_cold_first_batch_and_follows_change():
    model = LatencyModel(decay=0.5, warmup=1)
    model.observe(1, 5.0)  # lazy initialisation
    assert model.predict(1) == 0.0
    for _ in range(30):
        model.observe(8, 0.001)
    assert model.predict(8) == pytest.approx(0.001)
    for _ in range(30):
        model.observe(8, 0.004)
    assert model.predict(8) == pytest.approx(0.004, rel=1e-3)


def test_idle_model_runs_a_lone_request_at_once():
    assert policy().next_step(state(queued=1, in_flight=0)).now


def test_busy_single_slot_waits_for_the_running_batch_without_a_timer():
    step = policy(concurrency=1).next_step(state(queued=5, in_flight=1))
    assert not step.now and step.wake_at is None


def test_spare_pipeline_slot_waits_for_more_items_until_the_budget_requires_starting():
    p = policy(concurrency=2)
    step = p.next_step(state(now=100.000, queued=4, oldest=100.0, in_flight=1))
    assert not step.now
    latest = 100.0 + 0.010 - p.latency.predict(4)
    assert step.wake_at == pytest.approx(latest)
    assert p.next_step(state(now=latest, queued=4, oldest=100.0, in_flight=1)).now


def test_full_batch_starts_on_a_spare_slot_without_waiting():
    assert policy(concurrency=2).next_step(state(queued=64, in_flight=1)).now


def test_requests_are_admitted_while_the_predicted_wait_fits_the_budget():
    p = policy()
    assert p.refusal(state(queued=0, in_flight=0), 1) is None
    assert p.refusal(state(queued=10, in_flight=1, remaining=0.003), 1) is None


def test_requests_beyond_the_budget_are_refused_with_a_retry_delay():
    p = policy()
    # 3 full batches ahead at ~8.4 ms each: far beyond a 10 ms budget.
    retry = p.refusal(state(queued=192, in_flight=1, remaining=0.005), 1)
    assert retry is not None and retry > 0.010


def test_queue_bound_refuses_even_when_the_model_is_untrained():
    p = policy(latency=LatencyModel(), queue=100)
    assert p.refusal(state(queued=90, in_flight=1), 5) is None
    assert p.refusal(state(queued=98, in_flight=1), 5) is not None


def test_a_slow_batch_in_flight_alone_is_not_overload():
    # The running batch will take 50 ms more, but everything queued fits in the next batch.
    assert policy().refusal(state(queued=10, in_flight=1, remaining=0.050), 1) is None


def test_a_request_is_refused_when_its_own_batch_would_end_past_the_budget():
    p = policy()
    # One full batch ahead (8.4 ms) fits the 10 ms budget, but not with the request's own batch after it.
    assert p.predicted_wait(state(queued=64, in_flight=0), 1) < 0.010
    assert p.refusal(state(queued=64, in_flight=0), 1) is not None
    assert p.refusal(state(queued=63, in_flight=0), 1) is None  # it joins the next batch


def test_time_between_batches_counts_in_the_predicted_wait():
    quiet, busy = trained_model(), trained_model()
    for _ in range(50):
        busy.observe_gap(0.004)  # the server spends 4 ms reading and refusing between batches
    backlog = state(queued=64, in_flight=0)
    assert policy(latency=busy).predicted_wait(backlog, 1) == pytest.approx(
        policy(latency=quiet).predicted_wait(backlog, 1) + 0.004, rel=0.01
    )


def test_answers_later_than_predicted_widen_the_margin_admission_keeps():
    latency = trained_model(base=0.001, per_item=0.00005)
    p = policy(latency=latency)
    backlog = state(queued=64, in_flight=0)  # 4.2 ms ahead + 1.05 ms for its own batch: fits 10 ms
    assert p.refusal(backlog, 1) is None
    for _ in range(256):
        latency.observe_lateness(0.006)  # answers keep arriving 6 ms after their prediction
    assert latency.margin == pytest.approx(0.006)
    assert p.refusal(backlog, 1) is not None
    for _ in range(256):
        latency.observe_lateness(0.0)
    assert latency.margin == 0.0 and p.refusal(backlog, 1) is None


def test_a_slow_event_loop_widens_the_margin_too():
    latency = trained_model(base=0.001, per_item=0.00005)
    for _ in range(256):
        latency.observe_loop_lag(0.006)  # requests sit in their sockets for a 6 ms loop turn
    assert latency.margin == pytest.approx(0.006)
    assert policy(latency=latency).refusal(state(queued=64, in_flight=0), 1) is not None


def test_the_margin_is_the_recent_99th_percentile_and_forgets_a_cold_start():
    latency = trained_model()
    recent = [0.001 * (i % 100) for i in range(256)]  # 0-99 ms, each value two or three times
    for late in [0.200] * 32 + recent:  # a cold start first
        latency.observe_lateness(late)
    assert latency.margin == pytest.approx(0.098)  # 3rd largest of the last 256 (99, 99, 98): their 99th percentile


def test_batches_that_overrun_the_fit_lengthen_the_bound_used_for_waiting():
    latency = LatencyModel(warmup=0)
    for i in range(300):
        latency.observe(8, 0.020 + (0.005 if i % 50 == 0 else 0.0))  # 2% of batches run 5 ms over
    assert latency.predict(8) == pytest.approx(0.020, abs=0.001)
    assert latency.bound(8) == pytest.approx(0.025, abs=0.001)


def test_once_overloaded_a_request_late_behind_the_running_batch_is_refused_for_one_budget():
    p = policy()
    behind_slow_batch = state(now=100.0, queued=10, in_flight=1, remaining=0.009)  # late, joins the next batch
    assert p.refusal(behind_slow_batch, 1) is None  # slowness: nobody is queued beyond the next batch
    assert p.refusal(state(now=100.0, queued=192, in_flight=1, remaining=0.005), 1) is not None  # a backlog
    assert p.refusal(state(now=100.005, queued=10, in_flight=1, remaining=0.009), 1) is not None
    assert p.refusal(state(now=100.011, queued=10, in_flight=1, remaining=0.009), 1) is None
