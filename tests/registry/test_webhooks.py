"""Webhooks against a real receiver on loopback: signed, retried with backoff while it is down, logged."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bento_jupyter.cli.main import main
from bento_jupyter.registry.client.remote import RegistryClient, push
from tests.registry.conftest import Receiver, RegistryProcess, free_port, make_bento, wait_until

pytestmark = pytest.mark.integration
SECRET = "s3cret-for-the-receiver"


@pytest.fixture
def hooked_registry(tmp_path: Path) -> Iterator[RegistryProcess]:
    process = RegistryProcess(
        f"sqlite:///{tmp_path / 'registry.db'}",
        f"file://{tmp_path / 'blobs'}",
        tmp_path / "home",
        extra=["--webhook-backoff", "0.2", "--webhook-attempts", "12"],
    ).start()
    yield process
    process.stop()


def test_events_reach_a_receiver_that_was_down_signed_and_logged(hooked_registry, local, name, capsys):
    port = free_port()  # nothing listens there yet
    remote = ["--url", hooked_registry.url, "--token", hooked_registry.tokens["admin"]]
    assert main(["registry", "webhook", "add", f"http://127.0.0.1:{port}/hook", "--secret", SECRET, *remote]) == 0
    hook_id = capsys.readouterr().out.split()[2]
    admin = RegistryClient(hooked_registry.url, hooked_registry.tokens["admin"])
    only_rollbacks = admin.json(
        "POST", "/webhooks", json={"url": f"http://127.0.0.1:{port}/rollbacks", "events": ["rollback"]}
    )
    for handler in ("v = 1\n", "v = 2\n"):
        make_bento(local, name, handler=handler)
    write = RegistryClient(hooked_registry.url, hooked_registry.tokens["write"])
    for n in (1, 2):
        push(f"{name}:{n}", hooked_registry.url, hooked_registry.tokens["write"], store=local)
    write.move_alias(name, "production", 1, None)
    write.move_alias(name, "production", 2, 1)
    write.rollback(name, "production", reason="canary failed")
    write.tag(name, 2, "golden")
    write.delete_version(name, 2)

    def log() -> list[dict[str, Any]]:
        return admin.json("GET", f"/webhooks/{hook_id}/deliveries")["deliveries"]

    retried = wait_until(lambda: [d for d in log() if d["attempts"] >= 2])
    assert all(d["status"] in ("pending", "sending") for d in log())
    assert "Connection" in retried[0]["error"] and retried[0]["response_status"] is None

    receiver = Receiver(port)
    try:
        delivered = wait_until(
            lambda: (entries := log()) and all(e["status"] == "delivered" for e in entries) and entries
        )
        wait_until(lambda: len(receiver.received) == 8)
    finally:
        receiver.close()
    assert sorted(d["event"] for d in delivered) == sorted(
        ["publish", "publish", "alias", "alias", "rollback", "tag", "delete"]
    )
    assert all(d["response_status"] == 204 for d in delivered)
    assert {d["id"] for d in retried} <= {d["id"] for d in delivered if d["attempts"] >= 2}
    by_path: dict[str, list[dict[str, Any]]] = {}
    for headers, body in receiver.received:
        signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        payload = json.loads(body)
        assert headers["Content-Type"] == "application/json"
        assert payload["event"] == headers["X-Bento-Jupyter-Event"] and payload["bento"] == name
        by_path.setdefault(payload["event"], []).append(payload)
        if headers["X-Bento-Jupyter-Delivery"] in {str(d["id"]) for d in delivered}:  # the hook with SECRET
            assert hmac.compare_digest(headers["X-Hub-Signature-256"], signature)
        else:
            assert not hmac.compare_digest(headers["X-Hub-Signature-256"], signature)
    rollback = by_path["rollback"][0]
    assert (rollback["label"], rollback["from"], rollback["to"], rollback["reason"]) == (
        "production",
        2,
        1,
        "canary failed",
    )
    assert rollback["actor"].startswith("test-write")
    assert len(by_path["rollback"]) == 2  # the '*' hook and the rollback-only hook
    only = admin.json("GET", f"/webhooks/{only_rollbacks['id']}/deliveries")["deliveries"]
    assert [d["event"] for d in only] == ["rollback"]


def test_a_refused_delivery_fails_at_once_and_can_be_sent_again(hooked_registry, local, name):
    receiver = Receiver(free_port(), status=400)
    try:
        admin = RegistryClient(hooked_registry.url, hooked_registry.tokens["admin"])
        hook = admin.json("POST", "/webhooks", json={"url": f"http://127.0.0.1:{receiver.port}/", "events": "publish"})
        assert len(hook["secret"]) >= 32
        assert "secret" not in admin.json("GET", "/webhooks")["webhooks"][0]
        make_bento(local, name)
        push(f"{name}:1", hooked_registry.url, hooked_registry.tokens["write"], store=local)
        path = f"/webhooks/{hook['id']}/deliveries"
        failed = wait_until(lambda: [d for d in admin.json("GET", path)["deliveries"] if d["status"] == "failed"])
        assert (failed[0]["attempts"], failed[0]["response_status"]) == (1, 400)
        receiver.status = 200
        admin.json("POST", f"{path}/{failed[0]['id']}/redeliver")
        done = wait_until(lambda: [d for d in admin.json("GET", path)["deliveries"] if d["status"] == "delivered"])
        assert (done[0]["attempts"], done[0]["response_status"]) == (2, 200)
        headers, body = receiver.received[-1]
        assert (
            headers["X-Hub-Signature-256"]
            == "sha256=" + hmac.new(hook["secret"].encode(), body, hashlib.sha256).hexdigest()
        )
    finally:
        receiver.close()


def test_deliveries_pending_when_the_registry_stops_are_sent_by_the_next_one(hooked_registry, local, name):
    port = free_port()
    admin = RegistryClient(hooked_registry.url, hooked_registry.tokens["admin"])
    hook = admin.json("POST", "/webhooks", json={"url": f"http://127.0.0.1:{port}/", "events": ["publish"]})
    make_bento(local, name)
    push(f"{name}:1", hooked_registry.url, hooked_registry.tokens["write"], store=local)
    path = f"/webhooks/{hook['id']}/deliveries"
    wait_until(lambda: admin.json("GET", path)["deliveries"][0]["attempts"] >= 1)
    hooked_registry.stop()  # SIGTERM while the delivery waits for its next try
    receiver = Receiver(port)
    try:
        restarted = RegistryProcess(
            hooked_registry.db, hooked_registry.storage, hooked_registry.home, tokens=hooked_registry.tokens
        ).start()
        try:
            admin = RegistryClient(restarted.url, restarted.tokens["admin"])
            (done,) = wait_until(
                lambda: [d for d in admin.json("GET", path)["deliveries"] if d["status"] == "delivered"], timeout=20
            )
        finally:
            restarted.stop()
    finally:
        receiver.close()
    assert done["attempts"] >= 2 and json.loads(receiver.received[0][1])["event"] == "publish"
