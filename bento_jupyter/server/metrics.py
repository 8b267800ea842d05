"""Per-service metrics: Prometheus series for /metrics and a live window for the notebook panel.

Requests are counted in plain Python objects, on the server's event-loop thread only, and turned
into Prometheus families when ``/metrics`` is scraped: a request pays a few additions, not
``prometheus_client``'s label lookups and locks.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

# BentoML's metric names, so existing dashboards keep working.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
_WINDOW_S = 10.0


@dataclass(frozen=True)
class APIStats:
    """A snapshot of one API for display: totals and the last few seconds."""

    requests: int
    errors: int
    rate_per_s: float
    p50_ms: float | None
    p99_ms: float | None
    mean_batch_size: float | None
    batches: int
    in_flight: int


class _Histogram:
    """Counts per bucket and a sum; made cumulative only when scraped."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # Prometheus buckets are "less or equal"
        self.total += value

    def cumulative(self) -> list[tuple[str, int]]:
        running, buckets = 0, []
        for bound, count in zip([*map(str, map(float, self.bounds)), "+Inf"], self.counts, strict=True):
            running += count
            buckets.append((bound, running))
        return buckets


class APIMetrics:
    """One API's counters. Written by the server's event-loop thread only; read from anywhere."""

    def __init__(self) -> None:
        self.in_progress = 0
        self.cancelled = 0  # requests dropped unanswered because their client disconnected
        self.by_status: dict[int, _Histogram] = {}  # response code -> latencies
        self.batch_sizes = _Histogram(_BATCH_BUCKETS)
        self._lock = threading.Lock()  # guards the live window against a reader's copy
        self._recent: deque[tuple[float, float]] = deque(maxlen=8192)  # (time, latency)
        self._recent_batches: deque[int] = deque(maxlen=1024)

    def answered(self, status: int, seconds: float) -> None:
        latencies = self.by_status.get(status)
        if latencies is None:
            latencies = self.by_status[status] = _Histogram(_LATENCY_BUCKETS)
        latencies.observe(seconds)
        with self._lock:
            self._recent.append((time.monotonic(), seconds))

    def batched(self, size: int) -> None:
        self.batch_sizes.observe(size)
        with self._lock:
            self._recent_batches.append(size)

    def snapshot(self, now: float) -> APIStats:
        with self._lock:
            window = [(t, lat) for t, lat in self._recent if now - t <= _WINDOW_S]
            sizes = list(self._recent_batches)
        recent = sorted(lat for _, lat in window)
        # Over the time the window's requests took, at least a second: a burst reads as the rate it had.
        span = max(now - window[0][0], 1.0) if window else _WINDOW_S
        counts = {status: sum(h.counts) for status, h in list(self.by_status.items())}

        def quantile(q: float) -> float | None:
            return recent[min(len(recent) - 1, int(q * len(recent)))] * 1000 if recent else None

        return APIStats(
            requests=sum(counts.values()),
            errors=sum(n for status, n in counts.items() if status >= 500),
            rate_per_s=len(recent) / span,
            p50_ms=quantile(0.5),
            p99_ms=quantile(0.99),
            mean_batch_size=sum(sizes) / len(sizes) if sizes else None,
            batches=sum(self.batch_sizes.counts),
            in_flight=self.in_progress,
        )


class ServiceMetrics(Collector):
    """The APIs' counters of one service, exposed as BentoML-named Prometheus series."""

    def __init__(self, service_name: str) -> None:
        self.service_name = service_name
        self._apis: dict[str, APIMetrics] = {}
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(self)

    def api(self, endpoint: str) -> APIMetrics:
        """The counters of ``endpoint`` (created on first use; kept across hot swaps)."""
        api = self._apis.get(endpoint)
        if api is None:
            api = self._apis[endpoint] = APIMetrics()
        return api

    def snapshot(self) -> dict[str, APIStats]:
        now = time.monotonic()
        return {endpoint: api.snapshot(now) for endpoint, api in list(self._apis.items())}

    def exposition(self) -> bytes:
        """The Prometheus text format of every series."""
        return generate_latest(self.registry)

    def collect(self) -> Iterator[Metric]:
        requests = "bentoml_service_request"
        labels = ["endpoint", "service_name", "http_response_code"]
        total = CounterMetricFamily(requests, "Requests answered", labels=labels)
        duration = HistogramMetricFamily(f"{requests}_duration_seconds", "Request latency", labels=labels)
        in_progress = GaugeMetricFamily(
            f"{requests}_in_progress", "Requests being handled", labels=["endpoint", "service_name"]
        )
        cancelled = CounterMetricFamily(
            f"{requests}_cancelled",
            "Requests dropped before computing because their client disconnected",
            labels=["endpoint", "service_name"],
        )
        batch_size = HistogramMetricFamily(
            "bentoml_service_adaptive_batch_size", "Items per model call", labels=["endpoint", "service_name"]
        )
        for endpoint, api in list(self._apis.items()):
            for status, latencies in list(api.by_status.items()):
                key = [endpoint, self.service_name, str(status)]
                buckets = latencies.cumulative()
                total.add_metric(key, buckets[-1][1])
                duration.add_metric(key, buckets, latencies.total)
            per_api = [endpoint, self.service_name]
            in_progress.add_metric(per_api, api.in_progress)
            cancelled.add_metric(per_api, api.cancelled)
            if api.batch_sizes.total:
                batch_size.add_metric(per_api, api.batch_sizes.cumulative(), api.batch_sizes.total)
        yield from (total, duration, in_progress, cancelled, batch_size)
