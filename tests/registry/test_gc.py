"""``registry gc``: unreferenced blobs go (dry run first), referenced and recently named ones stay."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import boto3
import pytest
from sqlalchemy import update

from bento_jupyter.bento.local_store import Store
from bento_jupyter.bento.manifest import read_manifest
from bento_jupyter.registry.client.cache import BlobCache
from bento_jupyter.registry.client.remote import RegistryClient, pull, push
from bento_jupyter.registry.db.tables import blob_marks, connect
from tests.registry.conftest import BUCKET, RegistryProcess, make_bento, s3_client

pytestmark = pytest.mark.integration
TWO_DAYS_S = 2 * 24 * 3600


def two_versions_then_delete_the_first(registry: RegistryProcess, local: Store, name: str) -> dict[str, int]:
    """Push NAME:1 and NAME:2 (different handler and model), delete 1: returns the blobs only 1 had."""
    make_bento(local, name, handler="v = 1\n", model=b"\x01" * 50_000)
    make_bento(local, name, handler="v = 2\n", model=b"\x02" * 70_000)
    for n in (1, 2):
        push(f"{name}:{n}", registry.url, registry.tokens["write"], store=local)
    RegistryClient(registry.url, registry.tokens["write"]).delete_version(name, 1)
    first, second = (read_manifest(local.resolve(f"{name}:{n}").path).document["files"] for n in (1, 2))
    kept = {f["sha256"] for f in second}
    return {f["sha256"]: f["size"] for f in first if f["sha256"] not in kept}


def gc(registry: RegistryProcess, *args: str) -> str:
    command = registry.command("registry", "gc", "--db", registry.db, "--storage", registry.storage, *args)
    if registry.s3_endpoint:
        command += ["--s3-endpoint", registry.s3_endpoint]
    done = subprocess.run(command, capture_output=True, text=True, env=registry.env(), timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def pulls(registry: RegistryProcess, ref: str, tmp_path: Path) -> None:
    store, cache = Store("bentos", tmp_path / "fresh"), BlobCache(tmp_path / "cache")
    assert pull(ref, registry.url, registry.tokens["read"], store=store, cache=cache).version == 2


def test_gc_on_disk_keeps_young_and_just_named_blobs_and_deletes_the_rest(sqlite_registry, local, name, tmp_path):
    orphans = two_versions_then_delete_the_first(sqlite_registry, local, name)
    assert len(orphans) == 2
    assert "would delete 0 blobs" in gc(sqlite_registry)  # all written within the grace period
    blob_root = Path(sqlite_registry.storage.removeprefix("file://")) / "sha256"
    old = time.time() - TWO_DAYS_S
    for path in blob_root.glob("??/*"):
        os.utime(path, (old, old))
    engine = connect(sqlite_registry.db)  # and the pushes that named them were two days ago too
    with engine.begin() as conn:
        conn.execute(update(blob_marks).values(marked_at="2000-01-01T00:00:00.000000Z"))
    engine.dispose()
    out = gc(sqlite_registry, "--verbose")
    assert f"would delete {len(orphans)} blobs, {sum(orphans.values())} bytes" in out
    assert "(dry run: --delete to delete)" in out and all(d in out for d in orphans)
    assert all((blob_root / d[:2] / d).exists() for d in orphans)
    model = max(orphans, key=orphans.get)  # a push checks it is there, so it will not upload it again
    assert RegistryClient(sqlite_registry.url, sqlite_registry.tokens["read"]).missing([model]) == []
    out = gc(sqlite_registry, "--delete")
    handler = min(orphans, key=orphans.get)
    assert f"deleted 1 blobs, {orphans[handler]} bytes" in out and "1 within the grace period" in out
    assert not (blob_root / handler[:2] / handler).exists() and (blob_root / model[:2] / model).exists()
    assert f"deleted 1 blobs, {orphans[model]} bytes" in gc(sqlite_registry, "--delete", "--grace-hours", "0")
    pulls(sqlite_registry, f"{name}:2", tmp_path)


def test_gc_on_s3_deletes_unreferenced_objects(s3_endpoint, local, name, tmp_path):
    registry = RegistryProcess(
        f"sqlite:///{tmp_path / 'registry.db'}", f"s3://{BUCKET}/gc-{name}", tmp_path / "home", s3_endpoint
    ).start()
    try:
        orphans = two_versions_then_delete_the_first(registry, local, name)
        assert f"would delete {len(orphans)} blobs" in gc(registry, "--grace-hours", "0")
        assert f"deleted {len(orphans)} blobs, {sum(orphans.values())} bytes" in gc(
            registry, "--grace-hours", "0", "--delete"
        )
        client = s3_client(boto3, s3_endpoint)
        listed = client.list_objects_v2(Bucket=BUCKET, Prefix=f"gc-{name}/sha256/").get("Contents", [])
        names = {item["Key"].rsplit("/", 1)[-1] for item in listed}
        assert names and not names & set(orphans)
        assert "would delete 0 blobs" in gc(registry, "--grace-hours", "0")
        pulls(registry, f"{name}:2", tmp_path)
    finally:
        registry.stop()
