"""The batching decisions, pinned with a fake clock: no idle waiting, bounded waits, early refusal."""

from __future__ import annotations

import pytest

from bento_jupyter.server.dispatch.policy import BatchPolicy, Decision, LatencyModel, Placement, QueueState

RUN, WAIT, REFUSE, LATE = Placement.RUN, Placement.WAIT, Placement.REFUSE, Placement.LATE


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


def state(now=100.0, queued=0, oldest=100.0, in_flight=0, remaining=0.0, overloaded_until=float("-inf")) -> QueueState:
    return QueueState(now, queued, oldest, in_flight, remaining, overloaded_until)


def refusal(p: BatchPolicy, s: QueueState, new_items: int) -> float | None:
    """The Retry-After seconds of an arrival of ``new_items``, None when admitted."""
    decision = p.decide(s, new_items)
    return decision.retry_after if decision.placement is REFUSE else None


# Batches take 2 ms + 0.1 ms per item (a full batch of 64: 8.4 ms); the budget is 10 ms.
_FULL = 0.0084
_LATEST_START_4 = 100.0 + 0.010 - 0.0024  # the oldest arrived at 100.0; a batch of 4 takes 2.4 ms
_LATEST_START_1 = 100.0 + 0.010 - 0.0021
_BEHIND_SLOW_BATCH_IN_WINDOW = {"queued": 10, "in_flight": 1, "remaining": 0.009, "overloaded_until": 100.010}

# row of policy.decide's table, case:
# (concurrency, queue bound, batch base seconds, state, arriving, deadline) -> decision
DECISION_TABLE = {
    "1 an arrival overfilling a non-empty queue": (
        (1, 100, 0.002, state(queued=98, in_flight=1), 5, None),
        Decision(REFUSE, retry_after=0.010),
    ),
    "1 not for an empty queue (a large request to a busy model)": (
        (1, 100, 0.002, state(queued=0, in_flight=1), 200, None),
        Decision(WAIT),
    ),
    "2 a late arrival behind a backlog opens an overload window": (
        (1, 1024, 0.002, state(queued=192, in_flight=1, remaining=0.005), 1, None),
        Decision(REFUSE, retry_after=0.005 + 3 * _FULL, overloaded_until=100.010),
    ),
    "3 a late arrival joining the next batch, inside an overload window": (
        (1, 1024, 0.002, state(now=100.005, **_BEHIND_SLOW_BATCH_IN_WINDOW), 1, None),
        Decision(REFUSE, retry_after=0.009),
    ),
    "3 not after the window: slowness is admitted": (
        (1, 1024, 0.002, state(now=100.011, **_BEHIND_SLOW_BATCH_IN_WINDOW), 1, None),
        Decision(WAIT),
    ),
    "3 not outside a window, though late": (
        (1, 1024, 0.002, state(queued=10, in_flight=1, remaining=0.009), 1, None),
        Decision(WAIT),
    ),
    "4 a deadline before the predicted answer, even to an idle model": (
        (1, 1024, 0.002, state(), 1, 100.001),
        Decision(LATE),
    ),
    "4 not when the deadline leaves room": (
        (1, 1024, 0.002, state(), 1, 100.003),
        Decision(RUN),
    ),
    "5 nothing queued": (
        (1, 1024, 0.002, state(), 0, None),
        Decision(WAIT),
    ),
    "5 every slot busy": (
        (1, 1024, 0.002, state(queued=5, in_flight=1), 0, None),
        Decision(WAIT),
    ),
    "5 every slot busy, an arrival that fits": (
        (1, 1024, 0.002, state(queued=10, in_flight=1, remaining=0.003), 1, None),
        Decision(WAIT),
    ),
    "6 an idle model runs a lone arrival at once": (
        (1, 1024, 0.002, state(), 1, None),
        Decision(RUN),
    ),
    "6 a free model refuses nobody, though late (a full batch of 64 takes 11.4 ms)": (
        (1, 1024, 0.005, state(overloaded_until=100.010), 100, None),
        Decision(RUN),
    ),
    "6 an idle model runs what is queued": (
        (1, 1024, 0.002, state(queued=1), 0, None),
        Decision(RUN),
    ),
    "6 a full batch on a spare slot": (
        (2, 1024, 0.002, state(queued=64, in_flight=1), 0, None),
        Decision(RUN),
    ),
    "7 a spare slot at the latest start": (
        (2, 1024, 0.002, state(now=_LATEST_START_4 + 1e-9, queued=4, in_flight=1), 0, None),
        Decision(RUN),
    ),
    "8 a spare slot waits for more until the latest start": (
        (2, 1024, 0.002, state(queued=4, in_flight=1), 0, None),
        Decision(WAIT, wake_at=_LATEST_START_4),
    ),
    "8 an arrival to a spare slot is not refused and waits for more": (
        (2, 1024, 0.002, state(in_flight=1), 1, None),
        Decision(WAIT, wake_at=_LATEST_START_1),
    ),
}


@pytest.mark.parametrize("case", DECISION_TABLE, ids=str)
def test_each_row_of_the_placement_table(case: str):
    (concurrency, queue, base, queue_state, arriving, deadline), expected = DECISION_TABLE[case]
    p = policy(concurrency=concurrency, queue=queue, latency=trained_model(base=base))
    decision = p.decide(queue_state, arriving, deadline)
    assert decision.placement is expected.placement
    for got, want in zip(decision[1:], expected[1:], strict=True):
        assert got == (None if want is None else pytest.approx(want, abs=1e-9))


def test_the_table_covers_every_row_and_placement():
    rows = {int(case.split()[0]) for case in DECISION_TABLE}
    assert rows == set(range(1, 9))
    assert {expected.placement for _, expected in DECISION_TABLE.values()} == set(Placement)


def test_deciding_changes_nothing():
    p, backlog = policy(), state(queued=192, in_flight=1, remaining=0.005)
    first = p.decide(backlog, 1)
    assert p.decide(state(now=100.005, queued=10, in_flight=1, remaining=0.009), 1) == Decision(WAIT)
    assert p.decide(backlog, 1) == first


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


def test_requests_are_admitted_while_the_predicted_wait_fits_the_budget():
    p = policy()
    assert refusal(p, state(queued=0, in_flight=0), 1) is None
    assert refusal(p, state(queued=10, in_flight=1, remaining=0.003), 1) is None


def test_requests_beyond_the_budget_are_refused_with_a_retry_delay():
    p = policy()
    # 3 full batches ahead at ~8.4 ms each: far beyond a 10 ms budget.
    retry = refusal(p, state(queued=192, in_flight=1, remaining=0.005), 1)
    assert retry is not None and retry > 0.010


def test_queue_bound_refuses_even_when_the_model_is_untrained():
    p = policy(latency=LatencyModel(), queue=100)
    assert refusal(p, state(queued=90, in_flight=1), 5) is None
    assert refusal(p, state(queued=98, in_flight=1), 5) is not None


def test_a_slow_batch_in_flight_alone_is_not_overload():
    # The running batch will take 50 ms more, but everything queued fits in the next batch.
    assert refusal(policy(), state(queued=10, in_flight=1, remaining=0.050), 1) is None


def test_a_request_is_refused_when_its_own_batch_would_end_past_the_budget():
    p = policy()
    # One full batch ahead (8.4 ms) fits the 10 ms budget, but not with the request's own batch after it.
    assert p.predicted_wait(state(queued=64, in_flight=0), 1) < 0.010
    assert refusal(p, state(queued=64, in_flight=0), 1) is not None
    assert refusal(p, state(queued=63, in_flight=0), 1) is None  # it joins the next batch


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
    assert refusal(p, backlog, 1) is None
    for _ in range(256):
        latency.observe_lateness(0.006)  # answers keep arriving 6 ms after their prediction
    assert latency.margin == pytest.approx(0.006)
    assert refusal(p, backlog, 1) is not None
    for _ in range(256):
        latency.observe_lateness(0.0)
    assert latency.margin == 0.0 and refusal(p, backlog, 1) is None


def test_a_slow_event_loop_widens_the_margin_too():
    latency = trained_model(base=0.001, per_item=0.00005)
    for _ in range(256):
        latency.observe_loop_lag(0.006)  # requests sit in their sockets for a 6 ms loop turn
    assert latency.margin == pytest.approx(0.006)
    assert refusal(policy(latency=latency), state(queued=64, in_flight=0), 1) is not None


def test_the_margin_is_the_recent_99th_percentile_and_forgets_a_cold_start():
    latency = trained_model()
    recent = [0.001 * (i % 100) for i in range(256)]  # 0-99 ms, each value two or three times
    for late in [0.200] * 32 + recent:  # a cold start first
        latency.observe_lateness(late)
    assert latency.margin == pytest.approx(0.098)  # 3rd largest of the last 256 (99, 99, 98): their 99th percentile


def test_a_past_overloads_outliers_stop_counting_after_a_second_however_few_observations_follow():
    """After a retry storm, a slow model sees few batches: the storm's slow batches, late answers and long loop
    turns must not keep admission strict for the next 256 of each."""
    latency = LatencyModel(warmup=0)
    for i in range(256):  # the storm: batches 15 ms over, answers 20 ms late, 15 ms loop turns
        now = 100.0 + i * 0.04
        latency.observe(8, 0.020 + (0.015 if i % 2 else 0.0), now)
        latency.observe_lateness(0.020, now)
        latency.observe_loop_lag(0.015, now)
    assert latency.bound(8) > 0.030 and latency.margin > 0.030
    after = 100.0 + 256 * 0.04 + 1.0
    for i in range(32):  # calm again: 32 observations, far fewer than the window holds
        latency.observe(8, 0.021, after + i * 0.021)
        latency.observe_lateness(0.0, after + i * 0.021)
        latency.observe_loop_lag(0.0002, after + i * 0.021)
    assert latency.bound(8) < 0.024
    assert latency.margin == pytest.approx(0.0002)


def test_a_slow_models_few_recent_batches_still_give_their_99th_percentile():
    """A model with 40 batches a second has under 256 observations in the horizon: the bound is still their 99th
    percentile (here the one slow batch), not the 3rd largest, which would be their 95th."""
    latency = LatencyModel(warmup=0)
    for i in range(70):  # read again at the 64th overrun: 41 batches within the last second
        latency.observe(8, 0.020 + (0.010 if i == 40 else 0.001 * (i % 2)), 100.0 + i * 0.025)
    assert latency.bound(8) > 0.028


def test_batches_that_overrun_the_fit_lengthen_the_bound_used_for_waiting():
    latency = LatencyModel(warmup=0)
    for i in range(300):
        latency.observe(8, 0.020 + (0.005 if i % 50 == 0 else 0.0))  # 2% of batches run 5 ms over
    assert latency.predict(8) == pytest.approx(0.020, abs=0.001)
    assert latency.bound(8) == pytest.approx(0.025, abs=0.001)


def test_once_overloaded_a_request_late_behind_the_running_batch_is_refused_for_one_budget():
    p = policy()
    behind_slow_batch = state(now=100.0, queued=10, in_flight=1, remaining=0.009)  # late, joins the next batch
    assert refusal(p, behind_slow_batch, 1) is None  # slowness: nobody is queued beyond the next batch
    backlog = p.decide(state(now=100.0, queued=192, in_flight=1, remaining=0.005), 1)
    assert backlog.placement is REFUSE and backlog.overloaded_until == pytest.approx(100.010)
    window = backlog.overloaded_until  # the dispatcher keeps it in its QueueState
    assert refusal(p, state(now=100.005, queued=10, in_flight=1, remaining=0.009, overloaded_until=window), 1)
    assert refusal(p, state(now=100.011, queued=10, in_flight=1, remaining=0.009, overloaded_until=window), 1) is None
