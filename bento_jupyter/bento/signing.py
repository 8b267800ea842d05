"""Sign a bento and verify its signature, with OpenSSF model-signing (key-based, offline).

The signature is a Sigstore bundle in ``bento.sig`` beside ``bento.yaml``: a DSSE envelope over an in-toto
statement listing every file of the bento (``bento.yaml`` included, so the manifest and its digest are covered)
with its sha256, signed by an elliptic-curve key (P-256/384/521). Anyone can check it with the standard tool:
``model_signing verify key --signature bento.sig --public_key KEY.pub BENTO_DIR``.

A set of trusted keys is a PEM public key file or a directory of them; a key is named by its file's stem and
identified by model-signing's hint: the sha256 of its PEM SubjectPublicKeyInfo.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from bento_jupyter.atomic import replacing, write_file
from bento_jupyter.bento.manifest import manifest_file_bytes, read_manifest
from bento_jupyter.bento.manifest_model import BentoManifest
from bento_jupyter.bento.manifest_paths import MANIFEST_NAME, SIGNATURE_NAME
from bento_jupyter.errors import BentoSignatureError

KEY_SUFFIXES = (".pub", ".pem")


@dataclass(frozen=True)
class Signer:
    """Who signed a bento: the key's fingerprint, and its name when it is one of the trusted keys."""

    fingerprint: str  # sha256 hex of the public key's PEM (model-signing's key hint)
    name: str | None = None

    def __str__(self) -> str:
        return f"{self.name} ({self.fingerprint[:16]})" if self.name else f"key {self.fingerprint[:16]}"


def key_fingerprint(public_key_pem: bytes) -> str:
    """model-signing's key hint: sha256 of the key re-encoded as PEM SubjectPublicKeyInfo (ValueError if not PEM)."""
    key = serialization.load_pem_public_key(public_key_pem)
    encoded = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(encoded).hexdigest()


def trusted_keys(location: Path) -> dict[str, Path]:
    """Fingerprint -> key file, from one PEM public key or a directory of ``*.pub``/``*.pem`` files."""
    files = sorted(p for p in location.iterdir() if p.suffix in KEY_SUFFIXES) if location.is_dir() else [location]
    if not location.exists() or not files:
        raise BentoSignatureError(f"no trusted public keys at {location} (PEM files named *.pub or *.pem)")
    keys = {}
    for path in files:
        try:
            keys[key_fingerprint(path.read_bytes())] = path
        except ValueError:
            raise BentoSignatureError(f"{path} is not a PEM public key") from None
    return keys


def _hashing_config() -> Any:  # model_signing.hashing.Config, imported lazily (a slow import)
    from model_signing import hashing

    return hashing.Config().set_ignored_paths(paths=[SIGNATURE_NAME], ignore_git_paths=False)


def signer_of(root: Path) -> Signer | None:
    """The key a bento's signature names, unverified (None when unsigned): for listings, never for trust."""
    try:
        bundle = json.loads((root / SIGNATURE_NAME).read_text())
        return Signer(bundle["verificationMaterial"]["publicKey"]["hint"])
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError):
        raise BentoSignatureError(f"{root / SIGNATURE_NAME} is not a model-signing signature") from None


def signing_config(private_key: Path, password: bytes | None = None) -> Any:
    """model-signing's signing configuration for this key; BentoSignatureError when the key cannot sign
    (call it early to fail before expensive work)."""
    from model_signing import signing

    try:
        key = serialization.load_pem_private_key(private_key.read_bytes(), password)
        if not isinstance(key, ec.EllipticCurvePrivateKey):  # model-signing would fail reading its .curve
            raise ValueError(f"{type(key).__name__.removesuffix('PrivateKey')} key, not elliptic-curve")
        # model-signing annotates the password as str but hands it to cryptography, which wants bytes
        return signing.Config().use_elliptic_key_signer(private_key=private_key, password=password)  # type: ignore[arg-type]
    except (OSError, ValueError, TypeError) as exc:
        raise BentoSignatureError(f"cannot sign with {private_key}: {exc} (an EC P-256/384/521 PEM key)") from None


def attach_signature(root: Path, bundle: bytes) -> None:
    """Give a stored bento the signature that came with a pull, when it has none (atomically; never replaces)."""
    if (root / SIGNATURE_NAME).exists():
        return
    write_file(root / SIGNATURE_NAME, bundle, scratch_dir=root.parent)


def sign_bento(root: Path, private_key: Path, password: bytes | None = None) -> Signer:
    """Verify the bento, then write ``bento.sig`` (replacing any older one atomically); return the signer."""
    read_manifest(root)  # never sign a bento that no longer matches its own manifest
    config = signing_config(private_key, password)
    with replacing(root / SIGNATURE_NAME, scratch_dir=root.parent) as scratch:
        config.set_hashing_config(_hashing_config()).sign(root, scratch)
    signer = signer_of(root)
    assert signer is not None
    return signer


def _trusted_key(signer: Signer, keys: Path | dict[str, Path], what: str) -> Path:
    trusted = trusted_keys(keys) if isinstance(keys, Path) else keys
    key = trusted.get(signer.fingerprint)
    if key is None:
        raise BentoSignatureError(f"{what} is signed by {signer}, which is not one of the {len(trusted)} trusted keys")
    return key


def verify_manifest_signature(manifest: BentoManifest, bundle: bytes, keys: Path | dict[str, Path]) -> Signer:
    """Check a signature against a manifest alone, without the files (a registry holds blobs, not a directory):
    the bundle must be signed by a trusted key and list exactly the manifest's files and ``bento.yaml``, each
    with the digest the manifest gives. BentoSignatureError otherwise."""
    name = manifest.name
    try:
        signer = Signer(json.loads(bundle)["verificationMaterial"]["publicKey"]["hint"])
    except (ValueError, KeyError, TypeError):
        raise BentoSignatureError(f"the signature of {name} is not a model-signing signature") from None
    key = _trusted_key(signer, keys, name)
    with tempfile.NamedTemporaryFile(suffix=".sig") as scratch:
        scratch.write(bundle)
        scratch.flush()
        try:
            covered = _signed_digests(Path(scratch.name), key)
        except Exception as exc:  # corrupt bundles raise protobuf, JSON and cryptography errors of many kinds
            raise BentoSignatureError(f"the signature of {name} does not verify with {key.name}: {exc!r}") from None
    listed = {entry.path: entry.sha256 for entry in manifest.files}
    listed[MANIFEST_NAME] = hashlib.sha256(manifest_file_bytes(manifest)).hexdigest()
    if covered != listed:
        changed = ", ".join(sorted({path for path, _ in set(covered.items()) ^ set(listed.items())}))
        raise BentoSignatureError(f"the signature of {name} does not cover this manifest (differs: {changed})")
    return Signer(signer.fingerprint, key.stem)


def _signed_digests(bundle: Path, key: Path) -> dict[str, str]:
    """The files a signature bundle covers (path -> SHA-256 hex), once it verifies with ``key``;
    raises what model-signing raises for a bundle that does not verify."""
    from model_signing._signing import sign_ec_key, sign_sigstore_pb  # model-signing's verifier of one bundle

    signed = sign_ec_key.Verifier(key).verify(sign_sigstore_pb.Signature.read(bundle))
    return {item.identifier: item.digest.digest_hex for item in signed.resource_descriptors()}


def _changes(root: Path, key: Path) -> str:
    """Which files of ``root`` were altered, added or removed since ``key`` signed it, compared digest by
    digest (model-signing's own report is a list's repr of byte strings: no text to parse)."""
    signed = _signed_digests(root / SIGNATURE_NAME, key)
    actual = {item.identifier: item.digest.digest_hex for item in _hashing_config().hash(root).resource_descriptors()}
    found = {
        "altered": sorted(path for path in signed.keys() & actual.keys() if signed[path] != actual[path]),
        "added": sorted(actual.keys() - signed.keys()),
        "removed": sorted(signed.keys() - actual.keys()),
    }
    return "; ".join(f"{what}: {', '.join(names)}" for what, names in found.items() if names)


def verify_bento(root: Path, keys: Path | dict[str, Path]) -> Signer:
    """The trusted signer of the bento at ``root``; BentoSignatureError when it is unsigned, signed by a key
    not in ``keys`` (a key file, a directory, or ``trusted_keys``' mapping), or changed after signing."""
    from model_signing import verifying

    signer = signer_of(root)
    if signer is None:
        raise BentoSignatureError(
            f"{root} is not signed (no {SIGNATURE_NAME}): sign it with bento-jupyter sign NAME[:VERSION] --key KEY"
        )
    key = _trusted_key(signer, keys, str(root))
    config = verifying.Config().use_elliptic_key_verifier(public_key=key).set_hashing_config(_hashing_config())
    try:
        config.verify(root, root / SIGNATURE_NAME)
    except ValueError as exc:
        message = str(exc)
        if message.startswith("Signature mismatch"):
            raise BentoSignatureError(f"{root} was changed after it was signed ({_changes(root, key)})") from None
        raise BentoSignatureError(f"{root}: the signature does not verify with {key.name}: {message}") from None
    except Exception as exc:  # a corrupt bundle raises protobuf and cryptography errors of many kinds
        raise BentoSignatureError(f"{root}: the signature does not verify with {key.name}: {exc!r}") from None
    return Signer(signer.fingerprint, key.stem)
