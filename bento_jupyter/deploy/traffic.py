"""A bento's deadlines and concurrency limits as each engine's own settings, and what an engine cannot express.

The kernel applies per API: ``timeout`` (capped by the server-wide ``request_timeout``), answered 504 when
exceeded; ``max_concurrency`` calls at once with ``max_queue_size`` more waiting (default 16 per slot), 503
beyond. BentoML 1.4 has these only per service (``traffic``); Ray Serve has them per deployment (one per API
here) and a request timeout per HTTP proxy. Every setting an engine cannot carry exactly comes back as a
one-line note, written into the generated files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bento_jupyter.bento.manifest_model import ApiEntry
from bento_jupyter.deploy.bundle import Bundle
from bento_jupyter.server.deadlines import tightest

WAITERS_PER_SLOT = 16  # the kernel's default waiting room per concurrency slot (server/endpoint.py)


def request_timeout(bundle: Bundle) -> float | None:
    """The server-wide deadline the bento records (``bento-jupyter serve --request-timeout``), in seconds."""
    return bundle.manifest.served_settings.request_timeout


def api_timeout(bundle: Bundle, api: ApiEntry) -> float | None:
    """An API's deadline in seconds: its ``@api(timeout=)`` capped by the server-wide one (None: none)."""
    return tightest(api.timeout, request_timeout(bundle))


def _plain(api: ApiEntry) -> bool:
    """Neither batchable, streaming nor a task: the APIs whose ``max_concurrency`` bounds calls at once."""
    return not (api.batchable or api.stream or api.task)


def _pairs(values: dict[str, Any]) -> list[str]:
    return [f"{name}={value}" for name, value in sorted(values.items()) if value is not None]


@dataclass
class BentoMLTraffic:
    """``@bentoml.service(traffic=..., threads=...)`` for a bento, and what it cannot carry."""

    traffic: dict[str, float | int] = field(default_factory=dict)
    threads: int | None = None
    notes: list[str] = field(default_factory=list)


def bentoml_traffic(bundle: Bundle) -> BentoMLTraffic:
    """BentoML 1.4 has one timeout (504) and one ``max_concurrency`` (429 beyond it, no waiting) per service."""
    result = BentoMLTraffic()
    apis = [api for api in bundle.apis if not api.task]
    timeouts = {api.name: api_timeout(bundle, api) for api in apis}
    given = [t for t in timeouts.values() if t is not None]
    if given and len(given) == len(timeouts):
        result.traffic["timeout"] = max(given)
        if len(set(given)) > 1:
            result.notes.append(
                f"BentoML has one timeout per service: {max(given)} s for every API (the bento's per-API "
                f"timeouts are {', '.join(_pairs(timeouts))})"
            )
    elif given:
        unbounded = sorted(name for name, t in timeouts.items() if t is None)
        result.notes.append(
            f"BentoML has one timeout per service and {', '.join(unbounded)} has none: per-API timeouts "
            f"({', '.join(_pairs(timeouts))}) are not applied; "
            "BentoML's default of 60 s applies to every API"
        )
    if given:
        result.notes.append(
            "BentoML ignores the deadline header x-envoy-expected-rq-timeout-ms: only the service timeout applies"
        )
    plain = [api for api in apis if _plain(api)]
    limits = [api.max_concurrency for api in plain]
    if plain and all(limits) and len(plain) == len(apis):
        total = sum(int(limit) for limit in limits if limit)
        result.traffic["max_concurrency"] = total
        result.threads = total  # sync APIs run on the service's threads (BentoML's default: 1)
        result.notes.append(
            f"BentoML refuses a request beyond max_concurrency={total} at once with 429 (no waiting room; "
            "the kernel queues max_queue_size more and refuses with 503)"
            + (": one limit for the whole service, the sum of the APIs' limits" if len(plain) > 1 else "")
        )
    elif any(limits):
        result.notes.append(
            "BentoML has one max_concurrency per service: the per-API limits "
            f"({', '.join(_pairs({a.name: a.max_concurrency for a in plain}))}) "
            "are not applied because other APIs have none"
        )
    return result


def ray_deployment_options(bundle: Bundle, api: ApiEntry) -> dict[str, int]:
    """``@serve.deployment`` options of a plain API: ``max_concurrency`` as ``max_ongoing_requests`` and its
    waiting room as ``max_queued_requests`` (Ray Serve answers 503 beyond it)."""
    limit = api.max_concurrency
    if not (limit and _plain(api)):
        return {}
    waiting = api.max_queue_size or WAITERS_PER_SLOT * int(limit)
    return {"max_ongoing_requests": int(limit), "max_queued_requests": int(waiting)}


def ray_notes(bundles: list[Bundle]) -> list[str]:
    """What Ray Serve carries only approximately."""
    notes = []
    if any(api_timeout(b, api) is not None for b in bundles for api in b.apis):
        notes.append(
            "Ray Serve answers a request past its timeout with 408 (the kernel: 504), and a client's "
            "x-request-timeout-seconds header may lengthen Ray's proxy timeout; x-envoy-expected-rq-timeout-ms "
            "is not read"
        )
    if any(ray_deployment_options(b, api) for b in bundles for api in b.apis):
        notes.append(
            "max_ongoing_requests and max_queued_requests are per replica and per caller in Ray Serve "
            "(the kernel's limits are per process)"
        )
    if any(api.max_concurrency and api.batchable for b in bundles for api in b.apis):
        notes.append(
            "a batchable API's max_concurrency is not applied: Ray Serve's batches are bounded by max_batch_size"
        )
    if len({request_timeout(b) for b in bundles}) > 1:
        notes.append(
            "Ray Serve has one request_timeout_s per cluster: the bentos record different ones, so each is "
            "applied by its application's ingress, not by http_options"
        )
    return notes
