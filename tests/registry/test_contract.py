"""The registry contract, run against every backend: sqlite/postgres metadata x local/s3 blobs."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from bento_jupyter.bento.local_store import Store
from bento_jupyter.bento.manifest import read_manifest
from bento_jupyter.registry.client.cache import BlobCache
from bento_jupyter.registry.client.remote import RegistryClient, history, move_alias, pull, push
from bento_jupyter.registry.errors import Conflict, NotFound, RegistryIntegrityError
from bento_jupyter.registry.records import AliasMove
from tests.registry.conftest import RegistryProcess, make_bento

pytestmark = pytest.mark.integration


def _push(registry: RegistryProcess, tag: str, store: Store, **kwargs):
    return push(tag, registry.url, registry.tokens["write"], store=store, **kwargs)


def _pull(registry: RegistryProcess, ref: str, store: Store, cache: BlobCache, **kwargs):
    return pull(ref, registry.url, registry.tokens["read"], store=store, cache=cache, **kwargs)


def test_versions_are_numbered_by_the_registry_and_identical_content_returns_the_existing_one(registry, local, name):
    make_bento(local, name, handler="v = 1\n")
    make_bento(local, name, handler="v = 2\n")
    first = _push(registry, f"{name}:1", local)
    second = _push(registry, f"{name}:2", local)
    again = _push(registry, f"{name}:1", local)
    assert (first.version, first.created, second.version, second.created) == (1, True, 2, True)
    assert (again.version, again.created, again.digest, again.uploaded_bytes) == (1, False, first.digest, 0)
    versions = registry.api("GET", f"/bentos/{name}/versions", "read").json()["versions"]
    assert [(v["version"], v["digest"]) for v in versions] == [(1, first.digest), (2, second.digest)]
    assert [e.action for e in history(name, registry.url, registry.tokens["read"])] == ["publish", "publish"]


def test_republishing_with_only_the_handler_changed_sends_no_model_bytes(registry, local, name):
    # Every blob names this bento: the session-wide registry holds blobs earlier tests pushed.
    model = name.encode() + bytes(range(256)) * 4096  # 1 MiB of weights
    changed = f"# {name}\ndef predict(x):\n    return 2 * x\n"
    make_bento(local, name, handler=f"# {name}\ndef predict(x):\n    return x\n", model=model)
    make_bento(local, name, handler=changed, model=model)
    seen: list[tuple[int, int]] = []
    first = _push(registry, f"{name}:1", local, progress=lambda done, total: seen.append((done, total)))
    second = _push(registry, f"{name}:2", local)
    assert first.uploaded_bytes > len(model) and seen[-1] == (first.uploaded_bytes, first.uploaded_bytes)
    assert second.uploaded_blobs == 1
    assert second.uploaded_bytes == len(changed)
    assert second.version == 2


def test_pull_verifies_everything_lands_in_the_local_store_and_reuses_the_cache(registry, local, name, tmp_path):
    make_bento(local, name, model=b"\x07" * 100_000)
    pushed = _push(registry, name, local)
    move_alias(name, "production", 1, registry.url, registry.tokens["write"])
    cache = BlobCache(tmp_path / "cache")
    elsewhere = Store("bentos", tmp_path / "elsewhere")
    pulled = _pull(registry, f"{name}@production", elsewhere, cache)
    assert (pulled.version, pulled.digest, pulled.reused) == (1, pushed.digest, False)
    assert pulled.downloaded_bytes == 100_000 + len("def predict(x):\n    return x\n")
    assert read_manifest(pulled.item.path).digest == pushed.digest  # every file re-hashed
    again = _pull(registry, f"{name}:1", elsewhere, cache)
    assert again.reused and again.item == pulled.item
    third_store = Store("bentos", tmp_path / "third")
    cached = _pull(registry, f"{name}:latest", third_store, cache)
    assert cached.downloaded_bytes == 0 and not cached.reused
    assert read_manifest(cached.item.path).digest == pushed.digest


def test_pull_refuses_a_corrupted_blob_and_writes_nothing(registry, local, name, tmp_path):
    item = make_bento(local, name, model=b"\x01" * 50_000)
    _push(registry, name, local)
    weights = next(f for f in read_manifest(item.path).document["files"] if f["path"] == "models/weights.bin")
    registry.corrupt_blob(weights["sha256"])
    elsewhere = Store("bentos", tmp_path / "elsewhere")
    cache = BlobCache(tmp_path / "cache")
    with pytest.raises(RegistryIntegrityError, match="corrupted"):
        _pull(registry, name, elsewhere, cache)
    assert elsewhere.list() == []
    assert not cache.has(weights["sha256"], weights["size"])


def test_aliases_move_by_compare_and_set_and_every_move_is_in_the_history(registry, local, name):
    for n in range(3):
        make_bento(local, name, handler=f"v = {n}\n")
        _push(registry, f"{name}:{n + 1}", local)
    client = RegistryClient(registry.url, registry.tokens["write"])
    client.move_alias(name, "production", 1, None)
    with pytest.raises(Conflict, match="points at 1") as lost:
        client.move_alias(name, "production", 3, 2)
    assert lost.value.details["current"] == 1
    with pytest.raises(Conflict):
        client.move_alias(name, "production", 2, None)  # 'must not exist yet'
    client.move_alias(name, "production", 2, 1)
    client.move_alias(name, "staging", 3, None)
    with pytest.raises(NotFound):
        client.move_alias(name, "staging", 9, 3)
    assert client.aliases(name) == {"production": 2, "staging": 3}
    moves = [(e.label, e.from_version, e.to_version, e.actor) for e in client.history(name) if e.action == "alias"]
    actor = moves[0][3]
    assert actor.startswith("test-write:")
    assert moves == [("production", None, 1, actor), ("production", 1, 2, actor), ("staging", None, 3, actor)]


def test_concurrent_compare_and_set_lets_exactly_one_writer_win(registry, local, name):
    for n in range(4):
        make_bento(local, name, handler=f"v = {n}\n")
        _push(registry, f"{name}:{n + 1}", local)
    client = RegistryClient(registry.url, registry.tokens["write"])
    client.move_alias(name, "production", 1, None)
    outcomes: list[object] = []

    def attempt(target: int) -> None:
        try:
            outcomes.append(
                RegistryClient(registry.url, registry.tokens["write"]).move_alias(name, "production", target, 1)
            )
        except Conflict as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=attempt, args=(2 + i % 3,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    winners = [o for o in outcomes if isinstance(o, AliasMove)]
    assert len(outcomes) == 8 and len(winners) == 1
    assert client.aliases(name)["production"] == winners[0].version


def test_tags_and_lineage_search_find_versions_by_notebook_cell_and_commit(registry, local, name):
    make_bento(local, name, handler="a = 1\n", notebook=f"nb/{name}.ipynb", commit="abc1234" + "0" * 33)
    cells = [{"cell_id": f"{name}-cell", "execution_count": 3, "source_sha256": "f" * 64, "source": "b = 2"}]
    make_bento(local, name, handler="b = 2\n", notebook=f"nb/{name}-other.ipynb", cells=cells)
    for n in (1, 2):
        _push(registry, f"{name}:{n}", local)
    client = RegistryClient(registry.url, registry.tokens["write"])
    client.tag(name, 2, "candidate")

    def found(**filters: str) -> list[tuple[str, int]]:
        return [(v.name, v.version) for v in client.search(**filters)]

    assert found(notebook=f"nb/{name}.ipynb") == [(name, 1)]
    assert found(cell=f"{name}-cell") == [(name, 2)]
    assert found(cell="f" * 64, name=name) == [(name, 2)]
    assert found(cell=hashlib.sha256(b"a = 1\n").hexdigest(), name=name) == [(name, 1)]
    assert found(commit="abc1234", name=name) == [(name, 1)]
    assert found(tag="candidate", name=name) == [(name, 2)]
    assert client.version(name, 2).tags == ["candidate"]
    client.tag(name, 2, "candidate", present=False)
    assert found(tag="candidate", name=name) == []
    assert [e.action for e in client.history(name)][-2:] == ["tag", "untag"]


def test_a_blob_with_the_wrong_digest_is_rejected_and_nothing_is_linked(registry, local, name):
    claimed = hashlib.sha256(b"the real content").hexdigest()
    answer = registry.api("PUT", f"/blobs/{claimed}", data=b"something else")
    assert answer.status_code == 422 and answer.json()["code"] == "digest_mismatch"
    assert registry.api("POST", "/blobs/missing", json={"digests": [claimed]}).json()["missing"] == [claimed]
    assert registry.api("GET", f"/blobs/{claimed}", "read").status_code == 404
    large = registry.api("PUT", f"/blobs/{claimed}", data=b"\x02" * (9 << 20))  # past one S3 part
    assert large.status_code == 422 and large.json()["code"] == "digest_mismatch"
    assert registry.api("POST", "/blobs/missing", json={"digests": [claimed]}).json()["missing"] == [claimed]
    item = make_bento(local, name, handler=f"# {name}\n", model=name.encode() * 100)
    manifest = read_manifest(item.path)
    answer = registry.api("POST", f"/bentos/{name}/versions", json=manifest.document)  # its blobs were never uploaded
    assert answer.status_code == 409 and len(answer.json()["missing"]) == 2
    assert registry.api("GET", f"/bentos/{name}/versions", "read").status_code == 404


def test_sixteen_concurrent_pushes_to_one_name_get_distinct_gap_free_versions(registry, local, name):
    for n in range(16):
        make_bento(local, name, handler=f"v = {n}\n", model=b"\x05" * 200_000)  # all share the model blob
    results: dict[int, object] = {}

    def one(n: int) -> None:
        try:
            results[n] = _push(registry, f"{name}:{n + 1}", local)
        except Exception as exc:  # reported below
            results[n] = exc

    threads = [threading.Thread(target=one, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    errors = [r for r in results.values() if isinstance(r, Exception)]
    assert not errors, errors
    assert sorted(r.version for r in results.values()) == list(range(1, 17))
    assert len({r.digest for r in results.values()}) == 16
    versions = registry.api("GET", f"/bentos/{name}/versions", "read").json()["versions"]
    assert [v["version"] for v in versions] == list(range(1, 17))
    assert [e["to"] for e in registry.api("GET", f"/bentos/{name}/history", "read").json()["history"]] == list(
        range(1, 17)
    )


KILLED_PUSH = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from bento_jupyter.bento.local_store import Store
    from bento_jupyter.registry.client.remote import push

    def progress(done, total):
        if done > total // 3:
            os.kill(os.getpid(), signal.SIGKILL)

    push(sys.argv[1], sys.argv[2], sys.argv[3], progress, Store("bentos", Path(sys.argv[4])))
    """
)


def test_a_push_killed_mid_upload_leaves_no_version_and_can_be_retried(registry, local, name, tmp_path):
    item = make_bento(local, name, model=b"\x09" * (12 << 20))
    weights = next(f for f in read_manifest(item.path).document["files"] if f["path"] == "models/weights.bin")
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_PUSH, name, registry.url, registry.tokens["write"], str(tmp_path / "home")],
        timeout=120,
    )
    assert killed.returncode == -9
    assert registry.api("GET", f"/bentos/{name}/versions", "read").status_code == 404
    missing = registry.api("POST", "/blobs/missing", json={"digests": [weights["sha256"]]}).json()["missing"]
    assert missing == [weights["sha256"]]
    if registry.storage.startswith("file://"):  # the server dropped the partial upload
        uploads = Path(registry.storage.removeprefix("file://")) / "uploads"
        deadline = time.monotonic() + 10
        while any(uploads.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(uploads.iterdir())
    retried = _push(registry, name, local)
    assert (retried.version, retried.created) == (1, True)
    pulled = _pull(registry, name, Store("bentos", tmp_path / "elsewhere"), BlobCache(tmp_path / "cache"))
    assert read_manifest(pulled.item.path).digest == retried.digest


def test_a_push_interrupted_after_its_blobs_publishes_nothing_until_retried(registry, local, name):
    item = make_bento(local, name, handler=f"# {name}\n", model=name.encode() * 100)
    client = RegistryClient(registry.url, registry.tokens["write"])
    for entry in read_manifest(item.path).document["files"]:
        client.upload_blob(entry["sha256"], Path(item.path, entry["path"]), lambda n: None)
    assert registry.api("GET", f"/bentos/{name}/versions", "read").status_code == 404
    retried = _push(registry, name, local)
    assert (retried.version, retried.uploaded_bytes) == (1, 0)


def test_the_history_is_append_only_even_in_the_database(registry, local, name):
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import DBAPIError

    make_bento(local, name, handler=f"# {name}\n")
    _push(registry, name, local)
    assert registry.api("GET", f"/bentos/{name}", "read").json() == {
        "name": name,
        "latest": 1,
        "created_at": registry.api("GET", f"/bentos/{name}/versions/1", "read").json()["created_at"],
        "aliases": {},
    }
    engine = create_engine(registry.db)
    try:
        for statement in ("UPDATE history SET actor = 'mallory'", "DELETE FROM history"):
            with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
                conn.execute(text(statement))
    finally:
        engine.dispose()
