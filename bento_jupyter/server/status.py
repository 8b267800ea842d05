"""A running service as the notebook panels show it: where it listens, its endpoints and live numbers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bento_jupyter.server.metrics import APIStats

if TYPE_CHECKING:
    from bento_jupyter.server.services import RunningService


def _stats(stats: APIStats | None) -> dict[str, Any]:
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


def _combined(per_api: list[APIStats]) -> dict[str, Any]:
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


RECENT_TASKS = 20


def _tasks(service: RunningService) -> list[dict[str, Any]]:
    """The service's newest tasks (their status, API and times), for the sidebar's task list."""
    tasks = service.app.tasks
    if tasks is None:
        return []
    return [{"api": r.api, **r.status_json()} for r in tasks.store.recent(RECENT_TASKS)]


def service_status(service: RunningService) -> dict[str, Any]:
    """JSON for the sidebar and the cell's panel: name, url, host, port, cell_id, running, endpoints (each with
    its stats) and the service's combined stats (requests, errors, in_flight, rate_per_s, p50_ms, p99_ms in
    milliseconds, mean_batch_size; null before any traffic), and its newest tasks (``tasks``: api, task_id, status,
    created_at, executed_at, completed_at, cancel_requested)."""
    stats = service.stats()
    return {
        "name": service.name,
        "url": service.url,
        "host": service.server.host,
        "port": service.server.port,
        "cell_id": service.cell_id,
        "running": service.running,
        "endpoints": [
            {
                "name": m.name,
                "route": route,
                "batchable": m.config.batchable,
                "stream": m.is_stream,
                "task": m.config.task,
                "stats": _stats(stats.get(route)),
            }
            for route, m in service.definition.apis.items()
        ],
        "stats": _combined(list(stats.values())),
        "tasks": _tasks(service),
    }
