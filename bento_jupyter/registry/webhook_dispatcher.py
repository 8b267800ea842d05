"""Send pending webhook deliveries: signed POSTs, retried with exponential backoff (tenacity).

Every registry replica runs one dispatcher. A replica claims a delivery by compare-and-set on its status,
and keeps the claim fresh while it retries; a claim older than the lease (a replica that died) is taken
over by another. Each attempt is recorded: the delivery log shows attempts, the last status and error.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import requests
from sqlalchemy import Engine, or_, select, update
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from bento_jupyter._version import __version__
from bento_jupyter.registry.db.metadata import now
from bento_jupyter.registry.db.tables import WRITE, webhook_deliveries, webhooks
from bento_jupyter.registry.webhooks import (
    DELIVERED,
    DELIVERY_HEADER,
    EVENT_HEADER,
    FAILED,
    PENDING,
    SENDING,
    SIGNATURE_HEADER,
    sign,
)

logger = logging.getLogger("bento_jupyter.registry.webhooks")
_RETRYABLE_STATUS = frozenset({408, 425, 429})


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: ``attempts`` in all, waiting ``backoff_s`` * 2**n (at most ``max_backoff_s``) between."""

    attempts: int = 8
    backoff_s: float = 1.0
    max_backoff_s: float = 60.0
    timeout_s: float = 10.0

    @property
    def lease_s(self) -> float:
        return self.max_backoff_s + self.timeout_s + 30


class _Retryable(Exception):
    """The receiver is down or answered 5xx/408/429: try again later."""


class _Stopping(Exception):
    """The dispatcher is closing: the delivery goes back to pending (a killed one waits for its lease)."""


class WebhookDispatcher:
    """A background thread that claims pending deliveries and sends them on a small thread pool."""

    def __init__(self, engine: Engine, policy: RetryPolicy | None = None, workers: int = 8, poll_s: float = 0.5):
        self.engine = engine
        self.policy = policy or RetryPolicy()
        self.poll_s = poll_s
        self._stopping = threading.Event()
        self._workers = workers
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="webhook")
        self._busy = 0  # deliveries being sent; a replica claims only what it can start at once
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="webhook-dispatcher", daemon=True)

    def start(self) -> WebhookDispatcher:
        self._thread.start()
        return self

    def close(self, timeout: float = 5) -> None:
        self._stopping.set()
        self._thread.join(timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                with self._lock:
                    free = self._workers - self._busy
                for row in self._claim(free) if free else []:
                    with self._lock:
                        self._busy += 1
                    self._pool.submit(self._send, row).add_done_callback(self._done)
            except Exception:
                logger.exception("webhooks: claiming deliveries failed; retrying")
            self._stopping.wait(self.poll_s)

    def _done(self, _: Any) -> None:
        with self._lock:
            self._busy -= 1

    def _claim(self, limit: int) -> list[Any]:
        """Deliveries this replica now owns: pending ones, and ones whose owner's lease ran out."""
        stale = (datetime.now(timezone.utc) - timedelta(seconds=self.policy.lease_s)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        claimable = or_(
            webhook_deliveries.c.status == PENDING,
            (webhook_deliveries.c.status == SENDING) & (webhook_deliveries.c.updated_at < stale),
        )
        with self.engine.connect() as conn:  # a read first: an idle registry takes no write lock
            candidates = list(
                conn.execute(
                    select(webhook_deliveries.c.id).where(claimable).order_by(webhook_deliveries.c.id).limit(limit)
                ).scalars()
            )
        claimed = []
        if candidates:
            with self.engine.connect() as conn:
                conn.execution_options(**{WRITE: True})
                with conn.begin():
                    for delivery_id in candidates:
                        won = conn.execute(
                            update(webhook_deliveries)
                            .where(webhook_deliveries.c.id == delivery_id, claimable)
                            .values(status=SENDING, updated_at=now())
                        )
                        if won.rowcount == 1:
                            claimed.append(delivery_id)
        if not claimed:
            return []
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    select(webhook_deliveries, webhooks.c.url, webhooks.c.secret)
                    .join(webhooks, webhooks.c.id == webhook_deliveries.c.hook_id, isouter=True)
                    .where(webhook_deliveries.c.id.in_(claimed))
                )
            )

    def _pause(self, seconds: float) -> None:
        """Tenacity's sleep between attempts, cut short when the dispatcher closes."""
        self._stopping.wait(seconds)

    def _update(self, delivery_id: int, **values: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(webhook_deliveries)
                .where(webhook_deliveries.c.id == delivery_id)
                .values(updated_at=now(), **values)
            )

    def _send(self, row: Any) -> None:
        if row.url is None:
            self._update(row.id, status=FAILED, error="the webhook was deleted")
            return
        retrying = Retrying(
            stop=stop_after_attempt(self.policy.attempts),
            wait=wait_exponential(multiplier=self.policy.backoff_s, max=self.policy.max_backoff_s),
            retry=retry_if_exception_type(_Retryable),
            sleep=self._pause,
            reraise=True,
        )
        attempts = row.attempts
        try:
            for attempt in retrying:
                with attempt:
                    attempts += 1
                    self._attempt(row, attempts)
        except _Retryable:
            self._update(row.id, status=FAILED)
        except _Stopping:  # back in the queue, for this registry's next start or another replica
            self._update(row.id, status=PENDING)
        except Exception as exc:  # a bug here must not kill the pool thread; the log shows it
            logger.exception("webhooks: delivery %s failed", row.id)
            self._update(row.id, status=FAILED, error=f"{type(exc).__name__}: {exc}")

    def _attempt(self, row: Any, attempts: int) -> None:
        if self._stopping.is_set():
            raise _Stopping()
        body = row.payload.encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"bento-jupyter-registry/{__version__}",
            SIGNATURE_HEADER: sign(row.secret, body),
            EVENT_HEADER: row.event,
            DELIVERY_HEADER: str(row.id),
        }
        try:
            answer = requests.post(
                row.url, data=body, headers=headers, timeout=self.policy.timeout_s, allow_redirects=False
            )
        except requests.RequestException as exc:
            self._update(row.id, attempts=attempts, response_status=None, error=f"{type(exc).__name__}: {exc}"[:2000])
            raise _Retryable() from None
        if 200 <= answer.status_code < 300:
            self._update(row.id, status=DELIVERED, attempts=attempts, response_status=answer.status_code, error=None)
            return
        error = f"HTTP {answer.status_code}: {answer.text[:500]}"
        retry = answer.status_code >= 500 or answer.status_code in _RETRYABLE_STATUS
        self._update(
            row.id,
            attempts=attempts,
            response_status=answer.status_code,
            error=error,
            **({} if retry else {"status": FAILED}),
        )
        if retry:
            raise _Retryable()
