"""The panel's live numbers: a rate that reads true for a burst and for steady traffic."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bento_jupyter.server import metrics
from bento_jupyter.server.metrics import APIMetrics


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(metrics.time, "monotonic", fake)
    return fake


def test_a_sub_second_burst_reads_as_its_own_rate_then_fades(clock):
    api = APIMetrics()
    for _ in range(200):
        api.answered(200, 0.002)
        clock.now += 0.001  # 200 requests in 0.2 s
    assert api.snapshot(clock.now).rate_per_s == pytest.approx(200, rel=0.01)  # not 200 / 10 s = 20/s
    assert api.snapshot(clock.now + 4.0).rate_per_s == pytest.approx(200 / 4.2, rel=0.01)
    assert api.snapshot(clock.now + 11).rate_per_s == 0


@given(st.integers(1, 50))
def test_steady_traffic_reads_as_its_rate(per_second):
    api, now = APIMetrics(), [0.0]
    original = metrics.time.monotonic
    metrics.time.monotonic = lambda: now[0]
    try:
        for _ in range(int(30 * per_second)):
            api.answered(200, 0.001)
            now[0] += 1 / per_second
        assert api.snapshot(now[0]).rate_per_s == pytest.approx(per_second, rel=0.15)
        assert api.snapshot(now[0]).in_flight == 0
    finally:
        metrics.time.monotonic = original


def test_no_traffic_has_no_latency_numbers(clock):
    stats = APIMetrics().snapshot(clock.now)
    assert stats.rate_per_s == 0 and stats.p50_ms is None and stats.p99_ms is None and stats.requests == 0
