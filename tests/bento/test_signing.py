"""Signatures over a bento (OpenSSF model-signing, EC keys): refused when unsigned, signed by an unknown key or
changed after signing; accepted by `verify-signature`, `serve --require-signature` and model-signing's own CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from bento_jupyter.bento.local_store import Store
from bento_jupyter.bento.manifest import read_manifest, write_manifest
from bento_jupyter.bento.manifest_model import BentoManifest
from bento_jupyter.bento.signing import sign_bento, signer_of, verify_bento
from bento_jupyter.errors import BentoSignatureError
from tests.integration.bento_process import served_bento


def write_key_pair(directory: Path, name: str, curve: ec.EllipticCurve | None = None) -> tuple[Path, Path]:
    """``name.pem`` (private) and ``trusted/name.pub`` under ``directory``."""
    key = ec.generate_private_key(curve or ec.SECP256R1())
    private = directory / f"{name}.pem"
    private.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    (directory / "trusted").mkdir(exist_ok=True)
    public = directory / "trusted" / f"{name}.pub"
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return private, public


@pytest.fixture
def bento(tmp_path: Path) -> Path:
    root = tmp_path / "bento"
    (root / "models").mkdir(parents=True)
    (root / "models" / "weights.bin").write_bytes(os.urandom(2048))
    (root / "src").mkdir()
    (root / "src" / "service.py").write_text("def predict(x: int) -> int:\n    return x\n")
    write_manifest(root, BentoManifest.model_validate({"kind": "bento", "name": "signed", "lineage": {}}))
    return root


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Path]:
    alice, _ = write_key_pair(tmp_path, "alice")
    mallory = tmp_path / "mallory"
    mallory.mkdir()
    intruder, _ = write_key_pair(mallory, "mallory", ec.SECP384R1())
    return {"alice": alice, "mallory": intruder, "trusted": tmp_path / "trusted"}


def test_a_signed_bento_verifies_and_names_its_key_and_stays_a_valid_bento(bento, keys):
    signer = sign_bento(bento, keys["alice"])
    assert verify_bento(bento, keys["trusted"]) == signer.__class__(signer.fingerprint, "alice")
    assert signer_of(bento).fingerprint == signer.fingerprint
    read_manifest(bento)  # bento.sig is not a file of the manifest: the bento still verifies


def test_an_unsigned_bento_is_refused(bento, keys):
    with pytest.raises(BentoSignatureError, match="is not signed"):
        verify_bento(bento, keys["trusted"])


def test_a_bento_signed_by_an_unknown_key_is_refused(bento, keys):
    sign_bento(bento, keys["mallory"])
    with pytest.raises(BentoSignatureError, match="which is not one of the 1 trusted keys"):
        verify_bento(bento, keys["trusted"])


@pytest.mark.parametrize("change", ["alter", "add", "remove", "manifest"])
def test_a_bento_changed_after_signing_is_refused_naming_the_file(bento, keys, change):
    sign_bento(bento, keys["alice"])
    if change == "alter":
        (bento / "src" / "service.py").write_text("def predict(x: int) -> int:\n    return -x\n")
        expected = "altered: src/service.py"
    elif change == "add":
        (bento / "src" / "extra.py").write_text("import os\n")
        expected = "added: src/extra.py"
    elif change == "remove":
        (bento / "models" / "weights.bin").unlink()
        expected = "removed: models/weights.bin"
    else:  # re-digested manifest: valid by itself, but not what was signed
        manifest = read_manifest(bento, verify_files=False)
        write_manifest(
            bento, BentoManifest.model_validate({**manifest.document, "lineage": {"built_by": "someone else"}})
        )
        expected = "altered: bento.yaml"
    with pytest.raises(BentoSignatureError, match=f"changed after it was signed \\({expected}"):
        verify_bento(bento, keys["trusted"])


def test_changed_files_are_named_whatever_characters_their_names_hold(bento, keys):
    """Quotes, commas and brackets in names (and in model-signing's byte digests) leave the report intact."""
    (bento / "models" / 'it\'s, "v2" [final].bin').write_bytes(os.urandom(64))
    write_manifest(
        bento, BentoManifest.model_validate({**read_manifest(bento, verify_files=False).document, "lineage": {}})
    )
    sign_bento(bento, keys["alice"])
    (bento / "models" / 'it\'s, "v2" [final].bin').write_bytes(os.urandom(64))
    (bento / "src" / "o'brien, \\x.py").write_text("x = 1\n")
    (bento / "models" / "weights.bin").unlink()
    expected = "altered: models/it's, \"v2\" [final].bin; added: src/o'brien, \\x.py; removed: models/weights.bin"
    with pytest.raises(BentoSignatureError) as refused:
        verify_bento(bento, keys["trusted"])
    assert f"changed after it was signed ({expected})" in str(refused.value)


def test_a_forged_signature_naming_a_trusted_key_is_refused(bento, keys, tmp_path):
    sign_bento(bento, keys["alice"])
    genuine = (bento / "bento.sig").read_bytes()
    sign_bento(bento, keys["mallory"])
    forged = (bento / "bento.sig").read_text()
    alice_hint = json.loads(genuine)["verificationMaterial"]["publicKey"]["hint"]
    mallory_hint = signer_of(bento).fingerprint
    (bento / "bento.sig").write_text(forged.replace(mallory_hint, alice_hint))
    with pytest.raises(BentoSignatureError, match=r"does not verify with alice\.pub"):
        verify_bento(bento, keys["trusted"])


def test_model_signing_own_cli_verifies_our_signature(bento, keys):
    program = shutil.which("model_signing", path=os.path.dirname(sys.executable))
    assert program is not None
    sign_bento(bento, keys["alice"])
    public = keys["trusted"] / "alice.pub"
    args = [program, "verify", "key", "--signature", str(bento / "bento.sig"), "--public_key", str(public), str(bento)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "Verification succeeded" in done.stdout + done.stderr


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bento_jupyter.cli", *args], capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("kind", ["RSA", "Ed25519"])
def test_signing_with_a_key_that_is_not_elliptic_curve_is_one_line_exit_2(bento, tmp_path, kind):
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    key = rsa.generate_private_key(65537, 2048) if kind == "RSA" else ed25519.Ed25519PrivateKey.generate()
    pem = tmp_path / f"{kind}.pem"
    pem.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    refused = _cli("sign", str(bento), "--key", str(pem))
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().splitlines() == [
        f"bento-jupyter: error: cannot sign with {pem}: {kind} key, not elliptic-curve (an EC P-256/384/521 PEM key)"
    ]
    assert signer_of(bento) is None


@pytest.mark.integration
def test_cli_sign_verify_and_serve_require_signature(tmp_path, keys, monkeypatch):
    """A real bento built by the magics: refused unsigned, served once signed, refused again once altered."""
    from tests.oci.conftest import build_demo

    monkeypatch.setenv("BENTO_JUPYTER_HOME", str(tmp_path / "home"))
    build_demo(Store("bentos"), offsets=(5,))
    trusted = str(keys["trusted"])
    unsigned = _cli("serve", "demo:1", "--require-signature", trusted)
    assert unsigned.returncode == 2 and "is not signed" in unsigned.stderr
    assert _cli("verify-signature", "demo:1", "--keys", trusted).returncode == 2
    assert "unsigned (bento-jupyter sign" in _cli("bentos", "show", "demo:1").stdout
    signed = _cli("sign", "demo:1", "--key", str(keys["alice"]))
    assert signed.returncode == 0, signed.stderr
    fingerprint = signer_of(Store("bentos").resolve("demo:1").path).fingerprint
    assert f"signed by key {fingerprint}" in _cli("bentos", "show", "demo:1").stdout
    verified = _cli("verify-signature", "demo:1", "--keys", trusted)
    assert verified.returncode == 0 and "signed by alice" in verified.stdout
    with served_bento("demo:1", "--require-signature", trusted) as url:
        assert requests.post(f"{url}/predict", json={"x": [1.0, 0.0, 0.0]}, timeout=30).json() == [5.0, 6.0, 7.0, 8.0]
    source = Store("bentos").resolve("demo:1").path / "src" / "service.py"
    source.write_text(source.read_text().replace("+ 5", "+ 6"))
    altered = _cli("serve", "demo:1", "--require-signature", trusted)
    assert altered.returncode == 2 and "changed after it was signed (altered: src/service.py)" in altered.stderr
