"""Mean adaptive batch size over a window, from a server's Prometheus ``/metrics``."""

from __future__ import annotations

from dataclasses import dataclass

import requests
from prometheus_client.parser import text_string_to_metric_families

_FAMILY = "bentoml_service_adaptive_batch_size"


@dataclass(frozen=True)
class BatchTotals:
    """Running totals of items (``sum``) and model calls (``count``) for the predict API."""

    items: float
    calls: float

    def mean_since(self, earlier: BatchTotals) -> float | None:
        calls = self.calls - earlier.calls
        return (self.items - earlier.items) / calls if calls > 0 else None


def _is_predict(labels: dict[str, str]) -> bool:
    # Ours labels the route (endpoint="/predict"), BentoML the method (method_name="predict").
    return labels.get("endpoint") == "/predict" or labels.get("method_name") == "predict"


def batch_totals(base_url: str, session: requests.Session | None = None) -> BatchTotals | None:
    """The predict API's batch-size totals, or None when the server exposes none.

    Pass a ``session`` that scraped once before the load started: under a storm of about a thousand busy
    connections uvloop accepts a new connection only once the storm ends, while one already open is answered
    within a few loop turns."""
    try:
        text = (session or requests).get(f"{base_url}/metrics", timeout=5).text
    except requests.RequestException:
        return None
    items = calls = 0.0
    seen = False
    try:
        for family in text_string_to_metric_families(text):
            if family.name != _FAMILY:
                continue
            for sample in family.samples:
                if not _is_predict(sample.labels):
                    continue
                if sample.name == f"{_FAMILY}_sum":
                    items += sample.value
                    seen = True
                elif sample.name == f"{_FAMILY}_count":
                    calls += sample.value
    except ValueError:  # not Prometheus text (a server without /metrics)
        return None
    return BatchTotals(items, calls) if seen else None
