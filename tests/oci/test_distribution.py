"""Bentos pushed to and pulled from a real Docker Distribution registry: shared layers are not re-sent, a
pulled bento serves the same answers, a tampered blob is refused, htpasswd logins work."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import requests

from bento_jupyter.bento.local_store import Store
from bento_jupyter.oci.artifact import ARTIFACT_TYPE, MANIFEST_MEDIA_TYPE, WEIGHT, Artifact, pull, push
from bento_jupyter.oci.reference import OCIError
from tests.integration.bento_process import served_bento

pytestmark = pytest.mark.integration


def _cli(*args: str, stdin: str = "", env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bento_jupyter.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def _env() -> dict[str, str]:
    return dict(os.environ)


def _model_digest(store: Store, tag: str) -> str:
    document = json.loads(Artifact.from_bento(store.resolve(tag).path).manifest)
    (layer,) = [layer for layer in document["layers"] if layer["mediaType"] == WEIGHT]
    return layer["digest"]


def test_the_second_version_does_not_upload_the_model_layer_it_shares(open_registry, built):
    first = push("demo:1", open_registry.url("team/shared", "1"), store=built)
    files = built.manifest("demo:1").files
    assert first.skipped_blobs == 0 and first.uploaded_blobs == 1 + len(files)  # the config and every file
    second = push("demo:2", open_registry.url("team/shared", "2"), store=built)
    changed = {"bento.yaml", "src/service.py"}
    size = sum((built.resolve("demo:2").path / name).stat().st_size for name in changed)
    assert (second.uploaded_blobs, second.skipped_blobs, second.uploaded_bytes) == (2, len(files) - 1, size)
    assert _model_digest(built, "demo:1") == _model_digest(built, "demo:2")
    again = push("demo:2", open_registry.url("team/shared", "2"), store=built)
    assert again.uploaded_blobs == 0 and again.ref.digest == second.ref.digest  # same content, same manifest


def test_the_artifact_is_an_oci_manifest_of_our_type_with_modelpack_layers(open_registry, built):
    result = push("demo:1", open_registry.url("team/layout", "v1"), store=built)
    answer = requests.get(
        f"http://{open_registry.host}/v2/team/layout/manifests/{result.ref.digest}",
        headers={"Accept": MANIFEST_MEDIA_TYPE},
        timeout=10,
    )
    document = answer.json()
    assert answer.headers["Docker-Content-Digest"] == result.ref.digest
    assert document["mediaType"] == MANIFEST_MEDIA_TYPE and document["artifactType"] == ARTIFACT_TYPE
    files = {e.path: e for e in built.manifest("demo:1").files}
    paths = [layer["annotations"]["org.cncf.model.filepath"] for layer in document["layers"]]
    assert paths == sorted(files)
    for layer in document["layers"]:
        entry = files[layer["annotations"]["org.cncf.model.filepath"]]
        assert layer["digest"] == "sha256:" + entry.sha256 and layer["size"] == entry.size
    assert document["annotations"]["dev.bento-jupyter.bento.digest"] == built.manifest("demo:1").digest


def test_a_bento_pulled_by_digest_into_an_empty_home_serves_the_same_answers(
    open_registry, built, tmp_path, monkeypatch
):
    pushed = _cli(
        "oci",
        "push",
        "demo:2",
        open_registry.url("team/iris", "2"),
        env={**_env(), "BENTO_JUPYTER_HOME": str(built.root.parent)},
    )
    assert pushed.returncode == 0, pushed.stderr
    digest = pushed.stdout.split("@")[1].split()[0]
    monkeypatch.setenv("BENTO_JUPYTER_HOME", str(tmp_path / "empty-home"))
    pulled = _cli("oci", "pull", f"{open_registry.url('team/iris')}@{digest}", env=_env())
    assert pulled.returncode == 0, pulled.stderr
    assert "into the local store as demo:1" in pulled.stdout
    local = Store("bentos")
    assert local.manifest("demo:1").digest == built.manifest("demo:2").digest
    probe = [1.0, 2.0, 3.0]
    expected = (np.asarray(probe) @ np.arange(12.0).reshape(3, 4) + 100).tolist()
    with served_bento("demo:1") as url:
        answer = requests.post(f"{url}/predict", json={"x": probe}, timeout=30)
    assert answer.status_code == 200 and answer.json() == expected


def test_a_tampered_blob_in_the_registry_storage_is_refused_and_nothing_is_stored(open_registry, built, tmp_path):
    result = push("demo:1", open_registry.url("team/tamper", "1"), store=built)
    blob = open_registry.blob_path(_model_digest(built, "demo:1"))
    original = blob.read_bytes()
    blob.write_bytes(bytes(b ^ 0xFF for b in original))  # same size, other bytes
    local = Store("bentos", tmp_path / "home")
    try:
        with pytest.raises(OCIError, match=r"models/WEIGHTS\.npy .*does not match its digest"):
            pull(str(result.ref), store=local)
    finally:
        blob.write_bytes(original)
    assert local.list() == [] and list((local.root / ".scratch").iterdir()) == []
    assert pull(str(result.ref), store=local).item.tag == "demo:1"  # the same pull works once the blob is whole


def test_an_artifact_that_is_not_a_bento_is_refused(open_registry, tmp_path):
    from bento_jupyter.oci.distribution import DistributionClient
    from bento_jupyter.oci.reference import OCIReference

    ref = OCIReference.parse(open_registry.url("team/other", "x"))
    client = DistributionClient(ref)
    config = b"{}"
    digest = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    client.upload_blob(digest, config)
    document = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "artifactType": "application/vnd.example.thing",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": digest, "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.empty.v1+json", "digest": digest, "size": 2}],
    }
    client.put_manifest("x", json.dumps(document).encode(), MANIFEST_MEDIA_TYPE)
    with pytest.raises(OCIError, match="is not a bento"):
        pull(str(ref), store=Store("bentos", tmp_path))


def test_htpasswd_registry_refuses_without_login_and_accepts_password_stdin(htpasswd_registry, built):
    env = {**_env(), "BENTO_JUPYTER_HOME": str(built.root.parent), "DOCKER_CONFIG": "/nonexistent"}
    target = htpasswd_registry.url("team/private", "1")
    refused = _cli("oci", "push", "demo:1", target, env=env)
    assert refused.returncode == 2 and "needs a login" in refused.stderr
    wrong = _cli("oci", "push", "demo:1", target, "--username", "alice", "--password-stdin", stdin="nope\n", env=env)
    assert wrong.returncode == 2 and "401" in wrong.stderr
    done = _cli(
        "oci", "push", "demo:1", target, "--username", "alice", "--password-stdin", stdin="s3cret-pass\n", env=env
    )
    assert done.returncode == 0, done.stderr


def test_htpasswd_registry_uses_the_docker_config_login(htpasswd_registry, built, tmp_path, monkeypatch):
    from tests.oci.conftest import PASSWORD, USER

    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    (tmp_path / "config.json").write_text(json.dumps({"auths": {htpasswd_registry.host: {"auth": auth}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    result = push("demo:2", htpasswd_registry.url("team/docker-login", "2"), store=built)
    pulled = pull(str(result.ref), store=Store("bentos", tmp_path / "home"))
    assert pulled.bento_digest == built.manifest("demo:2").digest


def test_the_signature_travels_through_push_and_pull_and_still_verifies(open_registry, built, tmp_path):
    from bento_jupyter.bento.signing import sign_bento, verify_bento
    from bento_jupyter.oci.artifact import SIGNATURE_MEDIA_TYPE
    from tests.bento.test_signing import write_key_pair

    source = Store("bentos", tmp_path / "source")
    shutil.copytree(built.resolve("demo:1").path, source.root / "demo" / "1")
    private, _ = write_key_pair(tmp_path, "alice")
    sign_bento(source.resolve("demo:1").path, private)
    result = push("demo:1", open_registry.url("team/signed", "1"), store=source)
    document = json.loads(Artifact.from_bento(source.resolve("demo:1").path).manifest)
    assert document["layers"][-1]["mediaType"] == SIGNATURE_MEDIA_TYPE
    pulled = pull(str(result.ref), store=Store("bentos", tmp_path / "empty"))
    assert verify_bento(pulled.item.path, tmp_path / "trusted").name == "alice"


def test_bearer_tokens_from_the_registry_token_service(token_registry, built, tmp_path):
    from bento_jupyter.oci.credentials import Credentials
    from bento_jupyter.oci.distribution import DistributionClient
    from bento_jupyter.oci.reference import OCIReference
    from tests.oci.conftest import PASSWORD, USER

    registry, tokens = token_registry
    target = registry.url("team/bearer", "1")

    def client(credentials: Credentials | None) -> DistributionClient:
        return DistributionClient(OCIReference.parse(target), credentials or Credentials("", ""))

    with pytest.raises(OCIError, match="401"):
        push("demo:1", target, client(Credentials(USER, "wrong")), store=built)
    result = push("demo:1", target, client(Credentials(USER, PASSWORD)), store=built)
    assert any(grant["access"] and "push" in grant["access"][0]["actions"] for grant in tokens.issued)
    pulled = pull(str(result.ref), client(Credentials(USER, PASSWORD)), store=Store("bentos", tmp_path / "home"))
    assert pulled.bento_digest == built.manifest("demo:1").digest


def test_pulling_what_the_store_holds_reuses_it_and_only_adds_a_new_signature(open_registry, built, tmp_path):
    from bento_jupyter.bento.signing import sign_bento, verify_bento
    from tests.bento.test_signing import write_key_pair

    local = Store("bentos", tmp_path / "home")
    unsigned = push("demo:2", open_registry.url("team/reuse", "unsigned"), store=built)
    first = pull(str(unsigned.ref), store=local)
    again = pull(str(unsigned.ref), store=local)
    assert (again.item, again.downloaded_bytes) == (first.item, 0) and len(local.list()) == 1

    source = Store("bentos", tmp_path / "source")
    shutil.copytree(built.resolve("demo:2").path, source.root / "demo" / "1")
    private, _ = write_key_pair(tmp_path, "alice")
    sign_bento(source.resolve("demo:1").path, private)
    signed = push("demo:1", open_registry.url("team/reuse", "signed"), store=source)
    assert pull(str(signed.ref), store=local).item == first.item and len(local.list()) == 1
    assert verify_bento(first.item.path, tmp_path / "trusted").name == "alice"


def test_a_missing_artifact_or_an_unreachable_registry_is_one_clear_error(open_registry, tmp_path):
    from tests.integration.bento_process import free_port

    missing = _cli("oci", "pull", open_registry.url("team/none", "nope"), env=_env())
    assert missing.returncode == 2
    assert f"fetching the manifest nope on {open_registry.host}/team/none: 404" in missing.stderr
    assert "Traceback" not in missing.stderr
    down = _cli("oci", "pull", f"oci://127.0.0.1:{free_port()}/team/x:1", env=_env())
    assert down.returncode == 2 and "cannot reach the OCI registry" in down.stderr


def test_a_pickle_bento_is_pulled_only_with_trust_code_or_a_trusted_signature(open_registry, tmp_path):
    from bento_jupyter.bento.signing import sign_bento
    from bento_jupyter.bento.trust import TrustPolicy, UntrustedCodeError
    from tests.bento.hostile import pickle_bento
    from tests.bento.test_signing import write_key_pair

    source = Store("bentos", tmp_path / "source")
    pickle_bento(source.root / "evil" / "1", tmp_path / "pwned")
    private, _ = write_key_pair(tmp_path, "builder")
    sign_bento(source.resolve("evil:1").path, private)
    ref = str(push("evil:1", open_registry.url("team/evil", "1"), store=source).ref)
    local = Store("bentos", tmp_path / "home")
    with pytest.raises(UntrustedCodeError, match=r"models/m\.pkl.*--trust-code"):
        pull(ref, store=local)
    assert local.list() == []
    trusted = pull(ref, store=local, trust=TrustPolicy(trusted_keys=tmp_path / "trusted"))
    assert trusted.item.tag == "evil:1" and not (tmp_path / "pwned").exists()  # fetched, never unpickled
    refused = _cli("oci", "pull", ref, env={**_env(), "BENTO_JUPYTER_HOME": str(tmp_path / "cli-home")})
    assert refused.returncode == 2 and "--trust-code" in refused.stderr
    allowed = _cli("oci", "pull", ref, "--trust-code", env={**_env(), "BENTO_JUPYTER_HOME": str(tmp_path / "cli-home")})
    assert allowed.returncode == 0, allowed.stderr
    (tmp_path / "other").mkdir()
    write_key_pair(tmp_path / "other", "stranger")
    signed_home = {**_env(), "BENTO_JUPYTER_HOME": str(tmp_path / "signed-home")}
    wrong = _cli("oci", "pull", ref, "--require-signature", str(tmp_path / "other" / "trusted"), env=signed_home)
    assert wrong.returncode == 2 and "not one of the 1 trusted keys" in wrong.stderr, wrong.stderr
    assert "Traceback" not in wrong.stderr and Store("bentos", tmp_path / "signed-home").list() == []
    right = _cli("oci", "pull", ref, "--require-signature", str(tmp_path / "trusted"), env=signed_home)
    assert right.returncode == 0 and "signed by" in right.stderr and "builder" in right.stderr, right.stderr
    assert not (tmp_path / "pwned").exists()
