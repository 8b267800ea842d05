"""Webhooks: which URLs hear which events, and the delivery log (an outbox in the registry database).

A delivery row is written in the same transaction as the change it announces, so a committed change is
always announced (even if the server dies right after) and a rolled-back one never is. Each delivery's
JSON body is signed with the hook's secret like GitHub's webhooks: ``X-Hub-Signature-256: sha256=HEX``,
the HMAC-SHA256 of the exact body bytes. ``webhook_dispatcher`` sends them.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import json
import secrets
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from bento_jupyter.registry.db.metadata import now
from bento_jupyter.registry.db.tables import row_record, webhook_deliveries, webhooks
from bento_jupyter.registry.errors import NotFound
from bento_jupyter.registry.records import CreatedWebhook, CreateWebhook, Delivery, HistoryEvent, Webhook

SIGNATURE_HEADER = "X-Hub-Signature-256"
EVENT_HEADER = "X-Bento-Jupyter-Event"
DELIVERY_HEADER = "X-Bento-Jupyter-Delivery"
PENDING, SENDING, DELIVERED, FAILED = "pending", "sending", "delivered", "failed"


def sign(secret: str, body: bytes) -> str:
    """The signature header's value for ``body``: ``sha256=`` and the hex HMAC-SHA256."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _delivery(row: Any) -> Delivery:
    return row_record(Delivery, row, hook=row.hook_id, payload=json.loads(row.payload))


class WebhookStore:
    """Hooks and their delivery log in the registry database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, hook: CreateWebhook, actor: str) -> CreatedWebhook:
        """A new hook; without a secret one is generated. The secret is returned here only."""
        secret = hook.secret if hook.secret is not None else secrets.token_urlsafe(32)
        record = {
            "id": secrets.token_hex(6),
            "url": hook.url,
            "events": ",".join(hook.events),
            "created_at": now(),
            "created_by": actor,
        }
        with self.engine.begin() as conn:
            conn.execute(insert(webhooks).values(secret=secret, **record))
        return CreatedWebhook(
            id=record["id"],
            url=record["url"],
            events=record["events"].split(","),
            created_at=record["created_at"],
            created_by=actor,
            secret=secret,
        )

    def list(self) -> list[Webhook]:
        """Every hook, never its secret."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(webhooks).order_by(webhooks.c.created_at))
            return [row_record(Webhook, r, events=r.events.split(",")) for r in rows]  # never the secret column

    def delete(self, hook_id: str) -> None:
        """Remove a hook; its delivery log stays, and its pending deliveries are not sent."""
        with self.engine.begin() as conn:
            if conn.execute(webhooks.delete().where(webhooks.c.id == hook_id)).rowcount != 1:
                raise NotFound(f"no webhook {hook_id!r}")

    def deliveries(self, hook_id: str, limit: int = 100) -> builtins.list[Delivery]:
        """A hook's deliveries, newest first."""
        with self.engine.connect() as conn:
            if conn.execute(select(webhooks.c.id).where(webhooks.c.id == hook_id)).scalar() is None:
                raise NotFound(f"no webhook {hook_id!r}")
            rows = conn.execute(
                select(webhook_deliveries)
                .where(webhook_deliveries.c.hook_id == hook_id)
                .order_by(webhook_deliveries.c.id.desc())
                .limit(limit)
            )
            return [_delivery(r) for r in rows]

    def redeliver(self, hook_id: str, delivery_id: int) -> Delivery:
        """Queue a delivery again (after a receiver was fixed); attempts keep counting."""
        with self.engine.begin() as conn:
            done = conn.execute(
                update(webhook_deliveries)
                .where(webhook_deliveries.c.id == delivery_id, webhook_deliveries.c.hook_id == hook_id)
                .where(webhook_deliveries.c.status != SENDING)
                .values(status=PENDING, updated_at=now())
            )
            if done.rowcount != 1:
                raise NotFound(f"no finished delivery {delivery_id} of webhook {hook_id!r}")
            row = conn.execute(select(webhook_deliveries).where(webhook_deliveries.c.id == delivery_id)).one()
            return _delivery(row)

    def enqueue(self, conn: Connection, event: HistoryEvent) -> None:
        """A ``MetadataStore`` observer: one pending delivery per hook that wants ``event``'s action."""
        hooks = [
            row.id
            for row in conn.execute(select(webhooks.c.id, webhooks.c.events))
            if row.events == "*" or event.action in row.events.split(",")
        ]
        if not hooks:
            return
        stamp = now()
        payload = json.dumps({"event": event.action, **event.to_json()}, separators=(",", ":"), sort_keys=True)
        conn.execute(
            insert(webhook_deliveries),
            [
                {
                    "hook_id": hook,
                    "event": event.action,
                    "payload": payload,
                    "status": PENDING,
                    "attempts": 0,
                    "created_at": stamp,
                    "updated_at": stamp,
                }
                for hook in hooks
            ],
        )
