"""Signatures through the registry: a signed bento's bento.sig travels on push and pull, and the registry can
require a signature by a trusted key on publish for chosen names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from bento_jupyter.bento.local_store import Store
from bento_jupyter.bento.signing import sign_bento, verify_bento
from bento_jupyter.registry.client.remote import RegistryClient, pull, push
from bento_jupyter.registry.errors import Forbidden
from tests.bento.test_signing import write_key_pair
from tests.registry.conftest import RegistryProcess, make_bento

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("keys")
    write_key_pair(root, "release")
    intruders = root / "intruders"
    intruders.mkdir()
    write_key_pair(intruders, "mallory")
    return root


@pytest.fixture(scope="module")
def strict_registry(tmp_path_factory, keys) -> RegistryProcess:
    root = tmp_path_factory.mktemp("strict-registry")
    extra = ["--require-signature", "prod-*", "--trusted-keys", str(keys / "trusted")]
    process = RegistryProcess(f"sqlite:///{root / 'r.db'}", f"file://{root / 'blobs'}", root / "home", extra=extra)
    yield process.start()
    process.stop()


def _push(registry: RegistryProcess, tag: str, store: Store):
    return push(tag, registry.url, registry.tokens["write"], store=store)


def test_a_signed_bento_keeps_its_signature_through_push_and_pull(strict_registry, keys, local, tmp_path):
    item = make_bento(local, "prod-iris")
    sign_bento(item.path, keys / "release.pem")
    result = _push(strict_registry, "prod-iris:1", local)
    info = RegistryClient(strict_registry.url, strict_registry.tokens["read"]).version("prod-iris", result.version)
    assert info.signed_by is not None and info.signed_by.verified is True and len(info.signed_by.key) == 64
    elsewhere = Store("bentos", tmp_path / "elsewhere")
    pulled = pull("prod-iris", strict_registry.url, strict_registry.tokens["read"], store=elsewhere)
    assert verify_bento(pulled.item.path, keys / "trusted").name == "release"


def test_an_unsigned_bento_is_refused_for_a_name_that_requires_a_signature(strict_registry, local):
    make_bento(local, "prod-unsigned")
    with pytest.raises(Forbidden, match="prod-unsigned must be signed by a trusted key"):
        _push(strict_registry, "prod-unsigned", local)
    assert "prod-unsigned" not in {
        b.name for b in RegistryClient(strict_registry.url, strict_registry.tokens["read"]).bentos()
    }


def test_other_names_publish_unsigned_and_can_be_signed_later(strict_registry, keys, local, tmp_path):
    item = make_bento(local, "scratch-model")
    first = _push(strict_registry, "scratch-model", local)
    client = RegistryClient(strict_registry.url, strict_registry.tokens["read"])
    assert first.created and client.version("scratch-model", first.version).signed_by is None
    elsewhere = Store("bentos", tmp_path / "elsewhere")
    unsigned_copy = pull("scratch-model", strict_registry.url, strict_registry.tokens["read"], store=elsewhere).item
    sign_bento(item.path, keys / "release.pem")
    again = _push(strict_registry, "scratch-model", local)
    assert not again.created and again.version == first.version
    signed_by = client.version("scratch-model", first.version).signed_by
    assert signed_by is not None and signed_by.verified is True
    repulled = pull("scratch-model", strict_registry.url, strict_registry.tokens["read"], store=elsewhere)
    assert repulled.reused and repulled.item == unsigned_copy  # the copy it had, now with the signature
    assert verify_bento(unsigned_copy.path, keys / "trusted").name == "release"


def test_a_signature_by_an_untrusted_key_is_refused_for_a_required_name(strict_registry, keys, local):
    item = make_bento(local, "prod-mallory")
    sign_bento(item.path, keys / "intruders" / "mallory.pem")
    with pytest.raises(Forbidden, match="which is not one of the 1 trusted keys"):
        _push(strict_registry, "prod-mallory", local)


def test_a_signature_lifted_onto_another_manifest_is_refused(strict_registry, keys, local):
    signed = make_bento(local, "prod-lift", handler="def predict(x):\n    return x\n")
    sign_bento(signed.path, keys / "release.pem")
    other = make_bento(local, "prod-lift", handler="def predict(x):\n    return -x\n")
    manifest = json.loads((other.path / "bento.yaml").read_text())
    body = {**manifest, "signature": json.loads((signed.path / "bento.sig").read_text())}
    for entry in manifest["files"]:  # the blobs are there: only the signature can be the reason for a refusal
        with (other.path / entry["path"]).open("rb") as data:
            strict_registry.api("PUT", f"/blobs/{entry['sha256']}", data=data)
    answer = strict_registry.api("POST", "/bentos/prod-lift/versions", json=body)
    assert answer.status_code == 403
    assert "does not cover this manifest (differs: bento.yaml, src/service.py)" in answer.json()["error"]


def test_the_registry_refuses_to_start_requiring_signatures_without_keys(tmp_path):
    process = RegistryProcess(
        f"sqlite:///{tmp_path / 'r.db'}", f"file://{tmp_path / 'b'}", tmp_path / "h", extra=["--require-signature", "x"]
    )
    with pytest.raises(RuntimeError, match="needs --trusted-keys"):
        process.start()


def test_the_signature_is_served_with_the_version(strict_registry, keys, local):
    item = make_bento(local, "prod-served")
    sign_bento(item.path, keys / "release.pem")
    _push(strict_registry, "prod-served", local)
    info = requests.get(
        f"{strict_registry.url}/api/v1/bentos/prod-served/versions/latest",
        headers=strict_registry.headers("read"),
        timeout=10,
    ).json()
    assert info["signature"] == json.loads((item.path / "bento.sig").read_text())
