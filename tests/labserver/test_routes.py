"""The sidebar's REST routes on a real Jupyter server, against the local store and a real registry."""

from __future__ import annotations

import nbformat
import pytest

from bento_jupyter.bento.local_store import Store
from bento_jupyter.bento.manifest import read_manifest, write_manifest
from bento_jupyter.bento.manifest_model import BentoManifest
from tests.labserver.jupyter_process import API, JupyterServer
from tests.registry.conftest import RegistryProcess, free_port, make_bento

pytestmark = pytest.mark.integration

COMMIT = "0123456789abcdef0123456789abcdef01234567"  # what make_bento's lineage records
ROUTES = [
    ("GET", "bentos"),
    ("GET", "bentos/keep"),
    ("GET", "bentos/keep/1"),
    ("DELETE", "bentos/keep/1"),
    ("PUT", "bentos/keep/aliases/prod"),
    ("GET", "bentos/keep/aliases/prod/history"),
    ("POST", "bentos/keep/aliases/prod/rollback"),
    ("POST", "push"),
    ("GET", "local/bentos"),
    ("GET", "local/models"),
]


@pytest.fixture(scope="module")
def store(jupyter: JupyterServer) -> Store:
    """The server's local bento store, with the notebook make_bento's lineage names present under the root."""
    notebook = jupyter.root / "notebooks" / "train.ipynb"
    notebook.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nbformat.v4.new_notebook(), notebook)
    return Store("bentos", jupyter.home)


@pytest.fixture(autouse=True)
def local_settings(jupyter: JupyterServer) -> None:
    """Each test starts with the Bento settings naming no registry (the local store)."""
    jupyter.set_registry("")


def on_registry(jupyter: JupyterServer, registry: RegistryProcess, scope: str = "write") -> None:
    """Save Bento settings naming ``registry`` with a ``scope`` token, as the settings editor does."""
    jupyter.set_registry(registry.url, registry.tokens[scope])


def test_every_route_refuses_requests_without_the_jupyter_token(jupyter, store):
    make_bento(store, "keep")
    for method, path in ROUTES:
        for headers in ({}, {"Authorization": "token not-the-token"}):
            answer = jupyter.api(method, f"{API}/{path}", auth=False, headers=headers, json={"version": 1})
            assert answer.status_code == 403, (method, path, headers)
    assert [item.tag for item in store.list("keep")] == ["keep:1"]  # the refused DELETE deleted nothing


def test_local_store_routes_list_show_and_delete(jupyter, store):
    first = make_bento(store, "local-a")
    make_bento(store, "local-a", handler="v = 2\n", notebook="/elsewhere/not-here.ipynb")
    listed = jupyter.api("GET", f"{API}/bentos").json()
    assert (listed["source"], listed["url"]) == ("local", None)
    assert {"name": "local-a", "latest": 2, "versions": 2, "aliases": {}} in listed["bentos"]

    versions = jupyter.api("GET", f"{API}/bentos/local-a").json()
    manifest = read_manifest(first.path)
    assert versions["name"] == "local-a" and [v["version"] for v in versions["versions"]] == [1, 2]
    assert versions["versions"][0] == {
        "name": "local-a",
        "version": 1,
        "aliases": [],
        "tags": [],
        "created_by": "tester",
        "created_at": "2025-01-01T00:00:00Z",
        "size_bytes": manifest.size,
        "digest": manifest.digest,
        "code_executing_files": [],
        "signed_by": None,
    }

    detail = jupyter.api("GET", f"{API}/bentos/local-a/1").json()
    assert detail["notebook"] == {"path": "notebooks/train.ipynb"}
    assert detail["lineage"]["git"]["commit"] == COMMIT and detail["lineage"]["cells"][0]["cell_id"] == "cell-a"
    latest = jupyter.api("GET", f"{API}/bentos/local-a/latest").json()
    assert latest["version"] == 2 and latest["notebook"] == {"path": None}  # not a notebook under the root

    local = jupyter.api("GET", f"{API}/local/bentos").json()
    assert local["root"] == str(jupyter.home / "bentos")
    assert {"local-a:1", "local-a:2"} <= {item["tag"] for item in local["items"]}

    assert jupyter.api("DELETE", f"{API}/bentos/local-a/1").json() == {"deleted": "local-a:1"}
    gone = jupyter.api("GET", f"{API}/bentos/local-a/1")
    assert gone.status_code == 404 and "local-a:1 is not in" in gone.json()["error"]


def test_local_store_refuses_registry_only_actions_with_readable_errors(jupyter, store):
    make_bento(store, "local-b")
    alias = jupyter.api("PUT", f"{API}/bentos/local-b/aliases/prod", json={"version": 1})
    assert alias.status_code == 400 and alias.json()["error"].startswith("aliases live in a registry")
    push = jupyter.api("POST", f"{API}/push", json={"tag": "local-b:1"})
    assert push.status_code == 400
    assert push.json() == {"error": "no registry configured: set registryUrl in Settings > Bento"}
    unknown = jupyter.api("GET", f"{API}/bentos/ghost")
    assert unknown.status_code == 404 and "ghost" in unknown.json()["error"]
    bad_version = jupyter.api("GET", f"{API}/bentos/local-b/first")
    assert bad_version.status_code == 400 and "invalid version 'first'" in bad_version.json()["error"]
    bad_body = jupyter.api("POST", f"{API}/push", data=b"[not json")
    assert bad_body.status_code == 400 and bad_body.json()["error"] == "send a JSON object"


def test_registry_routes_push_list_show_alias_and_delete(jupyter, store, lab_registry):
    make_bento(store, "reg-a")
    make_bento(store, "reg-a", handler="v = 2\n")
    on_registry(jupyter, lab_registry)
    first = jupyter.api("POST", f"{API}/push", json={"tag": "reg-a:1"}).json()
    assert first == {"tag": "reg-a:1", "version": 1, "created": True}
    assert jupyter.api("POST", f"{API}/push", json={"tag": "reg-a:1"}).json()["created"] is False
    assert jupyter.api("POST", f"{API}/push", json={"tag": "reg-a:2"}).json()["version"] == 2

    moved = jupyter.api("PUT", f"{API}/bentos/reg-a/aliases/prod", json={"version": 1}).json()
    assert moved.items() >= {"name": "reg-a", "alias": "prod", "version": 1, "previous": None}.items()
    on_registry(jupyter, lab_registry, "read")
    listed = jupyter.api("GET", f"{API}/bentos").json()
    assert (listed["source"], listed["url"]) == ("registry", lab_registry.url)
    assert {"name": "reg-a", "latest": 2, "versions": 2, "aliases": {"prod": 1}} in listed["bentos"]

    versions = jupyter.api("GET", f"{API}/bentos/reg-a").json()["versions"]
    assert [(v["version"], v["aliases"], v["tags"]) for v in versions] == [(1, ["prod"], []), (2, [], [])]
    assert versions[0]["created_by"].startswith("test-write:") and versions[0]["size_bytes"] > 4096
    detail = jupyter.api("GET", f"{API}/bentos/reg-a/1").json()
    assert detail["digest"] == versions[0]["digest"] and detail["aliases"] == ["prod"]
    assert detail["lineage"]["notebook_path"] == "notebooks/train.ipynb"
    assert detail["notebook"] == {"path": "notebooks/train.ipynb"} and detail["lineage"]["git"]["commit"] == COMMIT
    scope = jupyter.api("DELETE", f"{API}/bentos/reg-a/2")
    assert scope.status_code == 403 and "read scope" in scope.json()["error"]

    on_registry(jupyter, lab_registry)
    held = jupyter.api("DELETE", f"{API}/bentos/reg-a/1")
    assert held.status_code == 409 and "reg-a@prod: move the alias first" in held.json()["error"]
    assert jupyter.api("DELETE", f"{API}/bentos/reg-a/2").json() == {"deleted": "reg-a:2"}
    remaining = jupyter.api("GET", f"{API}/bentos/reg-a").json()["versions"]
    assert [v["version"] for v in remaining] == [1]
    unknown = jupyter.api("GET", f"{API}/bentos/ghost")
    assert unknown.status_code == 404 and "ghost" in unknown.json()["error"]
    bad_alias = jupyter.api("PUT", f"{API}/bentos/reg-a/aliases/prod", json={"version": "2"})
    assert bad_alias.status_code == 400 and bad_alias.json()["error"] == "send {'version': N}"


def test_alias_history_and_rollback_routes_and_their_errors_as_messages(jupyter, store, lab_registry):
    for handler in ("v = 1\n", "v = 2\n"):
        make_bento(store, "roll-a", handler=handler)
    on_registry(jupyter, lab_registry)
    for tag in ("roll-a:1", "roll-a:2"):
        assert jupyter.api("POST", f"{API}/push", json={"tag": tag}).status_code == 200
    for version in (1, 2):
        assert jupyter.api("PUT", f"{API}/bentos/roll-a/aliases/prod", json={"version": version}).status_code == 200
    rolled = jupyter.api("POST", f"{API}/bentos/roll-a/aliases/prod/rollback", json={"reason": "bad canary"})
    assert rolled.status_code == 200 and (rolled.json()["previous"], rolled.json()["version"]) == (2, 1)
    history = jupyter.api("GET", f"{API}/bentos/roll-a/aliases/prod/history").json()["history"]
    assert [(e["action"], e["from"], e["to"], e["reason"]) for e in history] == [
        ("rollback", 2, 1, "bad canary"),
        ("alias", 1, 2, None),
        ("alias", None, 1, None),
    ]
    again = jupyter.api("POST", f"{API}/bentos/roll-a/aliases/prod/rollback", json={})
    assert again.status_code == 409 and "no earlier target" in again.json()["error"]
    jupyter.set_registry("")
    local = jupyter.api("POST", f"{API}/bentos/roll-a/aliases/prod/rollback", json={})
    assert local.status_code == 400 and local.json()["error"].startswith("aliases live in a registry")


def test_a_bad_registry_token_is_a_readable_401(jupyter, lab_registry):
    jupyter.set_registry(lab_registry.url, "bjr_bad.token")
    answer = jupyter.api("GET", f"{API}/bentos")
    assert answer.status_code == 401
    assert answer.json()["error"].startswith(f"the registry at {lab_registry.url} refused the token: unknown")


def test_an_unreachable_registry_is_a_readable_502(jupyter):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    jupyter.set_registry(url)
    answer = jupyter.api("GET", f"{API}/bentos")
    assert answer.status_code == 502
    assert answer.json() == {"error": f"cannot reach the registry at {url}: Connection refused"}


def test_versions_show_whether_they_are_signed_and_by_which_key(jupyter, store, lab_registry, tmp_path):
    from bento_jupyter.bento.signing import sign_bento, signer_of
    from tests.bento.test_signing import write_key_pair

    private, _ = write_key_pair(tmp_path, "release")
    make_bento(store, "signed-a")
    item = make_bento(store, "signed-a", handler="v = 2\n")
    sign_bento(item.path, private)
    key = signer_of(item.path).fingerprint
    local = jupyter.api("GET", f"{API}/bentos/signed-a").json()["versions"]
    assert [v["signed_by"] for v in local] == [None, {"key": key, "verified": False}]
    on_registry(jupyter, lab_registry)
    assert jupyter.api("POST", f"{API}/push", json={"tag": "signed-a:2"}).json()["created"] is True
    remote = jupyter.api("GET", f"{API}/bentos/signed-a").json()["versions"]
    assert remote[0]["signed_by"] == {"key": key, "verified": False}  # this registry trusts no keys


def test_a_versions_detail_says_whether_its_build_replayed_samples(jupyter, store):
    verification = {"state": "passed", "replayed": 3, "opted_out": ["noisy"]}

    def fill(root):
        (root / "src").mkdir()
        (root / "src" / "service.py").write_text("x = 1\n")
        write_manifest(
            root,
            BentoManifest.model_validate(
                {"kind": "bento", "name": "checked", "lineage": {}, "verification": verification}
            ),
        )

    store.add("checked", fill)
    make_bento(store, "unchecked")
    assert jupyter.api("GET", f"{API}/bentos/checked/1").json()["verification"] == verification
    assert jupyter.api("GET", f"{API}/bentos/unchecked/1").json()["verification"] is None
