"""Bad input: strict names, no path tricks, body limits, wrong digests, JSON errors, no unpickling."""

from __future__ import annotations

import ast
import hashlib
import http.client
import pickle
import signal
import socket
from pathlib import Path

import pytest
import requests

import bento_jupyter.registry
from bento_jupyter.bento.manifest import manifest_digest, read_manifest
from bento_jupyter.bento.manifest_model import BentoManifest
from bento_jupyter.bento.manifest_paths import check_file_path
from bento_jupyter.errors import InvalidManifest, InvalidReference
from bento_jupyter.refs import Reference, check_label
from bento_jupyter.registry.client.remote import RegistryClient, push
from tests.registry.conftest import RegistryProcess, make_bento

pytestmark = pytest.mark.integration
BLOB_LIMIT = 1 << 20
JSON_LIMIT = 64 << 10


@pytest.fixture(scope="module")
def strict(tmp_path_factory):
    root = tmp_path_factory.mktemp("strict")
    limits = ["--max-blob-mb", "1", "--max-manifest-mb", str(JSON_LIMIT / (1 << 20))]
    process = RegistryProcess(f"sqlite:///{root / 'r.db'}", f"file://{root / 'blobs'}", root / "home", extra=limits)
    yield process.start()
    process.stop()


@pytest.mark.parametrize("bad", ["UPPER", "a/b", "..", ".hidden", "-x", "a" * 65, "a b", "x%00"])
def test_bad_bento_names_are_refused_before_any_lookup(strict, bad):
    answer = strict.api("GET", f"/bentos/{bad}/versions", "read")
    assert answer.status_code in (400, 404)
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["code"] in ("invalid", "not_found")


def test_path_tricks_never_reach_the_filesystem(strict, tmp_path):
    for path in [
        "/blobs/..%2F..%2Fetc%2Fpasswd",
        "/blobs/" + "A" * 64,
        "/blobs/../../r.db",
        "/bentos/..%2F..%2F/history",
    ]:
        answer = strict.api("GET", path, "read")
        assert answer.status_code in (400, 404), path
    for bad in ["../x", "/etc/passwd", "a/../../x", "a\\b", "bento.yaml", "./a", "a//b", "c:/x"]:
        with pytest.raises(InvalidManifest):
            check_file_path(bad)
    for bad in ["1", "latest", "Prod", "a/b"]:
        with pytest.raises(InvalidReference):
            check_label(bad)
    with pytest.raises(InvalidReference):
        Reference.parse("../etc:1")
    assert Reference.parse("iris@production") == Reference("iris", alias="production")


def test_a_manifest_with_an_escaping_path_or_a_wrong_digest_is_refused(strict, local, name):
    item = make_bento(local, name)
    manifest = read_manifest(item.path)
    evil = {**manifest.document, "files": [{**manifest.document["files"][0], "path": "../../outside.py"}]}
    evil["digest"] = manifest_digest(evil)
    answer = strict.api("POST", f"/bentos/{name}/versions", json=evil)
    assert answer.status_code == 400 and "invalid file path" in answer.json()["error"]
    tampered = {**manifest.document, "lineage": {"notebook_path": "forged.ipynb"}}
    answer = strict.api("POST", f"/bentos/{name}/versions", json=tampered)
    assert answer.status_code == 422 and answer.json()["code"] == "digest_mismatch"
    renamed = strict.api("POST", "/bentos/other-name/versions", json=manifest.document)
    assert renamed.status_code == 400
    assert strict.api("GET", f"/bentos/{name}/versions", "read").status_code == 404


def test_bodies_over_the_limits_get_413(strict):
    digest = hashlib.sha256(b"x").hexdigest()
    host, port = strict.url.removeprefix("http://").split(":")
    for path, limit in [(f"/api/v1/blobs/{digest}", BLOB_LIMIT), ("/api/v1/blobs/missing", JSON_LIMIT)]:
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        method = "PUT" if "missing" not in path else "POST"
        connection.putrequest(method, path)
        connection.putheader("Authorization", f"Bearer {strict.tokens['write']}")
        connection.putheader("Content-Length", str(limit + 1))  # declared, never sent
        connection.endheaders()
        answer = connection.getresponse()
        assert answer.status == 413, path
        connection.close()

    def over_the_limit():  # chunked, no Content-Length: caught while streaming
        yield b"\x00" * BLOB_LIMIT
        yield b"\x00"

    answer = strict.api("PUT", f"/blobs/{digest}", data=over_the_limit())
    assert answer.status_code == 413 and answer.json()["code"] == "too_large"
    assert strict.api("POST", "/blobs/missing", json={"digests": [digest]}).json()["missing"] == [digest]


def test_errors_are_json(strict):
    assert strict.api("GET", "/nowhere", "read").json()["code"] == "not_found"
    assert strict.api("DELETE", "/bentos", "read").json()["code"] == "method_not_allowed"
    answer = strict.api("POST", "/blobs/missing", data=b"{not json", headers={"Content-Type": "application/json"})
    assert answer.status_code == 400 and answer.json() == {"error": "the body is not valid JSON", "code": "invalid"}
    answer = strict.api("PUT", "/bentos/x/aliases/prod", json={"version": 1})
    assert answer.status_code == 400 and "compare-and-set" in answer.json()["error"]


def test_the_server_never_unpickles_anything(strict, local, name, tmp_path):
    marker = tmp_path / "pwned"

    class Bomb:
        def __reduce__(self):
            return (Path.touch, (marker,))

    def fill(root: Path) -> None:
        (root / "models").mkdir()
        (root / "models" / "model.pkl").write_bytes(pickle.dumps(Bomb()))
        from bento_jupyter.bento.manifest import write_manifest

        write_manifest(
            root,
            BentoManifest.model_validate(
                {
                    "kind": "bento",
                    "name": name,
                    "models": [{"name": "m", "kind": "pickle", "files": ["model.pkl"]}],
                    "lineage": {},
                }
            ),
        )

    local.add(name, fill)
    assert push(name, strict.url, strict.tokens["write"], store=local).version == 1
    RegistryClient(strict.url, strict.tokens["read"]).version(name, 1)
    assert not marker.exists()
    forbidden = {"pickle", "cloudpickle", "dill", "joblib", "torch", "marshal", "shelve", "yaml"}
    for source in Path(bento_jupyter.registry.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import | ast.ImportFrom):
                modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                assert not {m.split(".")[0] for m in modules} & forbidden, (source.name, modules)


def test_a_server_killed_mid_upload_shows_nothing_and_a_restart_takes_the_retry(tmp_path, local, name):
    process = RegistryProcess(f"sqlite:///{tmp_path / 'r.db'}", f"file://{tmp_path / 'blobs'}", tmp_path / "home")
    process.start()
    item = make_bento(local, name, model=b"\x03" * 300_000)
    weights = next(f for f in read_manifest(item.path).document["files"] if f["path"] == "models/weights.bin")
    host, port = process.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        raw.sendall(
            f"PUT /api/v1/blobs/{weights['sha256']} HTTP/1.1\r\nHost: x\r\nContent-Length: 300000\r\n"
            f"Authorization: Bearer {process.tokens['write']}\r\n\r\n".encode()
            + b"\x03" * 100_000
        )
        process.stop(signal.SIGKILL)
    assert not (tmp_path / "blobs" / "sha256" / weights["sha256"][:2] / weights["sha256"]).exists()
    process.start()
    try:
        assert process.api("GET", f"/bentos/{name}/versions", "read").status_code == 404
        retried = push(name, process.url, process.tokens["write"], store=local)
        assert (retried.version, retried.uploaded_blobs) == (1, 2)
    finally:
        process.stop()


def test_what_the_openapi_document_allows_is_accepted(strict, local, name):
    """Requests valid by /openapi.json that the server once refused (found by schemathesis's positive-data check)."""
    make_bento(local, name)
    push(name, strict.url, strict.tokens["write"], store=local)
    moved = strict.api("PUT", f"/bentos/{name}/aliases/prod", json={"version": 1.0, "expected": None})
    assert moved.status_code == 200 and moved.json()["version"] == 1  # 1.0 is an integer to JSON Schema
    everything = strict.api("GET", "/search", "read")  # no filter: every version (first 1,000)
    assert everything.status_code == 200 and name in {v["name"] for v in everything.json()["versions"]}
    hook = strict.api("POST", "/webhooks", "admin", json={"url": "http://127.0.0.1:9/x", "events": ["*", "tag"]})
    assert hook.status_code == 201 and hook.json()["events"] == ["*"]
    policy = strict.api("PUT", f"/bentos/{name}/aliases/prod/policy", "admin", json={"requires": " verified , none"})
    assert policy.status_code == 200 and policy.json()["requires"] == ["verified"]
    for url in ("http://a b/", "http://[12Ef]/", "ftp://host/"):  # what the document's URL pattern excludes
        assert strict.api("POST", "/webhooks", "admin", json={"url": url}).status_code == 400, url


def test_the_registry_answers_a_malformed_name_or_version_400_with_the_parsers_message(sqlite_registry):
    client = RegistryClient(sqlite_registry.url, sqlite_registry.tokens["read"])
    for path, message in [("/bentos/Iris/versions", "invalid name 'Iris'"), ("/bentos/iris/versions/0", "invalid")]:
        answer = requests.get(f"{sqlite_registry.url}/api/v1{path}", headers=client.session.headers, timeout=10)
        assert answer.status_code == 400 and answer.json()["code"] == "invalid", answer.text
        assert message in answer.json()["error"]
