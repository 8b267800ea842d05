"""Per-service metrics: Prometheus series for /metrics and a live window for the notebook panel."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

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


class _APIWindow:
    """Recent latencies and batch sizes of one API (bounded memory, lock-protected)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latencies: deque[tuple[float, float]] = deque(maxlen=8192)
        self.batch_sizes: deque[int] = deque(maxlen=1024)
        self.requests = self.errors = self.batches = 0

    def snapshot(self, now: float) -> APIStats:
        with self.lock:
            recent = [lat for t, lat in self.latencies if now - t <= _WINDOW_S]
            sizes = list(self.batch_sizes)
            requests, errors, batches = self.requests, self.errors, self.batches
        recent.sort()

        def quantile(q: float) -> float | None:
            return recent[min(len(recent) - 1, int(q * len(recent)))] * 1000 if recent else None

        return APIStats(
            requests=requests,
            errors=errors,
            rate_per_s=len(recent) / _WINDOW_S,
            p50_ms=quantile(0.5),
            p99_ms=quantile(0.99),
            mean_batch_size=sum(sizes) / len(sizes) if sizes else None,
            batches=batches,
        )


class ServiceMetrics:
    """Counters, histograms and live windows for one service's APIs."""

    def __init__(self, service_name: str) -> None:
        self.service_name = service_name
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ["endpoint", "service_name", "http_response_code"]
        self._requests = Counter("bentoml_service_request", "Requests answered", labels, registry=self.registry)
        self._duration = Histogram(
            "bentoml_service_request_duration_seconds",
            "Request latency",
            labels,
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._in_progress = Gauge(
            "bentoml_service_request_in_progress",
            "Requests being handled",
            ["endpoint", "service_name"],
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self._batch_size = Histogram(
            "bentoml_service_adaptive_batch_size",
            "Items per model call",
            ["endpoint", "service_name"],
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )
        self._windows: dict[str, _APIWindow] = {}
        self._children: dict[tuple[str, int], tuple[Any, Any]] = {}

    def _window(self, endpoint: str) -> _APIWindow:
        window = self._windows.get(endpoint)
        if window is None:
            window = self._windows.setdefault(endpoint, _APIWindow())
        return window

    def in_progress(self, endpoint: str) -> Any:
        """A gauge child to ``inc()``/``dec()`` around a request."""
        return self._in_progress.labels(endpoint, self.service_name)

    def observe_request(self, endpoint: str, status: int, seconds: float) -> None:
        children = self._children.get((endpoint, status))
        if children is None:
            key = (endpoint, self.service_name, str(status))
            children = (self._requests.labels(*key), self._duration.labels(*key))
            self._children[(endpoint, status)] = children
        children[0].inc()
        children[1].observe(seconds)
        window = self._window(endpoint)
        with window.lock:
            window.requests += 1
            window.errors += status >= 500
            window.latencies.append((time.monotonic(), seconds))

    def observe_batch(self, endpoint: str, size: int) -> None:
        self._batch_size.labels(endpoint, self.service_name).observe(size)
        window = self._window(endpoint)
        with window.lock:
            window.batches += 1
            window.batch_sizes.append(size)

    def snapshot(self) -> dict[str, APIStats]:
        now = time.monotonic()
        return {endpoint: window.snapshot(now) for endpoint, window in list(self._windows.items())}

    def exposition(self) -> bytes:
        """The Prometheus text format of every series."""
        return generate_latest(self.registry)
