"""A running service as the notebook panels show it: where it listens, its endpoints and live numbers."""

from __future__ import annotations

from typing import Any

from bento_jupyter.server.metrics import APIStats


def api_stats_json(stats: APIStats | None) -> dict[str, Any]:
    if stats is None:
        return {
            "requests": 0,
            "errors": 0,
            "in_flight": 0,
            "rate_per_s": 0.0,
            "p50_ms": None,
            "p99_ms": None,
            "mean_batch_size": None,
        }
    return {
        "requests": stats.requests,
        "errors": stats.errors,
        "in_flight": stats.in_flight,
        "rate_per_s": stats.rate_per_s,
        "p50_ms": stats.p50_ms,
        "p99_ms": stats.p99_ms,
        "mean_batch_size": stats.mean_batch_size,
    }


def combined_stats_json(per_api: list[APIStats]) -> dict[str, Any]:
    """A service's numbers: totals of counts and rates, the worst latencies, batch size weighted by batches."""
    batched = [(s.mean_batch_size, s.batches) for s in per_api if s.mean_batch_size is not None and s.batches]
    p50s = [s.p50_ms for s in per_api if s.p50_ms is not None]
    p99s = [s.p99_ms for s in per_api if s.p99_ms is not None]
    return {
        "requests": sum(s.requests for s in per_api),
        "errors": sum(s.errors for s in per_api),
        "in_flight": sum(s.in_flight for s in per_api),
        "rate_per_s": sum(s.rate_per_s for s in per_api),
        "p50_ms": max(p50s, default=None),
        "p99_ms": max(p99s, default=None),
        "mean_batch_size": (sum(size * n for size, n in batched) / sum(n for _, n in batched) if batched else None),
    }
