"""A bento as an OCI artifact (image-spec 1.1 artifact guidance), and back.

Mapping (see README "Bentos in OCI registries"):

- ``artifactType``: ``application/vnd.bento-jupyter.bento.v1`` (our own);
- ``config``: the bento's ``bento.yaml``, byte for byte, as ``application/vnd.bento-jupyter.bento.config.v1+json``;
- ``layers``: one per listed file, in path order, unarchived and uncompressed, so a layer's digest is the file's
  sha256 from the manifest and a file shared by two versions is one blob. Media types are ModelPack's raw ones:
  ``models/`` files are ``weight``, ``*.md``/README/LICENSE are ``doc``, everything else (source, requirements,
  Dockerfile) ``code``. Each layer carries ModelPack's ``org.cncf.model.filepath`` and ORAS's
  ``org.opencontainers.image.title`` (so ``oras pull`` rebuilds the tree);
- the signature, when there is one, is one more layer (a Sigstore bundle, ``bento.sig``);
- manifest annotations: OCI's ``created``/``title``/``revision`` and ``dev.bento-jupyter.bento.digest``.

Not mapped: ModelPack's own ``artifactType`` and model config (``application/vnd.cncf.model.config.v1+json``):
a bento is a service (code, models, environment), not a model, and its config is its manifest.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from bento_jupyter.bento.local_store import Store, StoredItem
from bento_jupyter.bento.manifest import file_sha256, read_manifest
from bento_jupyter.bento.manifest_model import BentoManifest
from bento_jupyter.bento.manifest_paths import MANIFEST_NAME, SIGNATURE_NAME
from bento_jupyter.bento.signing import attach_signature
from bento_jupyter.bento.trust import TrustPolicy, check_trust
from bento_jupyter.errors import BentoIntegrityError
from bento_jupyter.oci.distribution import DistributionClient
from bento_jupyter.oci.reference import OCIError, OCIReference
from bento_jupyter.registry.errors import InvalidRequest
from bento_jupyter.registry.validation import check_manifest

MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
ARTIFACT_TYPE = "application/vnd.bento-jupyter.bento.v1"
CONFIG_MEDIA_TYPE = "application/vnd.bento-jupyter.bento.config.v1+json"
SIGNATURE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
WEIGHT = "application/vnd.cncf.model.weight.v1.raw"
CODE = "application/vnd.cncf.model.code.v1.raw"
DOC = "application/vnd.cncf.model.doc.v1.raw"
RAW_MEDIA_TYPES = frozenset({WEIGHT, CODE, DOC})
FILEPATH = "org.cncf.model.filepath"
TITLE = "org.opencontainers.image.title"
BENTO_DIGEST = "dev.bento-jupyter.bento.digest"
MAX_CONFIG_BYTES = 64 << 20


def layer_media_type(path: str) -> str:
    """The ModelPack raw media type of a bento file."""
    pure = PurePosixPath(path)
    if pure.parts[0] == "models":
        return WEIGHT
    if pure.suffix.lower() == ".md" or pure.stem.upper() in ("README", "LICENSE", "NOTICE"):
        return DOC
    return CODE


def _descriptor(media_type: str, digest: str, size: int, path: str | None = None) -> dict[str, Any]:
    descriptor: dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": size}
    if path is not None:
        descriptor["annotations"] = {FILEPATH: path, TITLE: path}
    return descriptor


@dataclass(frozen=True)
class Artifact:
    """A bento directory's OCI manifest, and where each blob's bytes are on disk."""

    manifest: bytes
    blobs: dict[str, Path | bytes]  # digest -> file (a layer) or bytes (the config)

    @classmethod
    def from_bento(cls, root: Path) -> Artifact:
        """Verify the bento (every file re-hashed) and describe it as an OCI image manifest."""
        manifest = read_manifest(root)
        config = (root / MANIFEST_NAME).read_bytes()
        config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
        blobs: dict[str, Path | bytes] = {config_digest: config}
        layers = []
        for entry in sorted(manifest.files, key=lambda e: e.path):
            digest = "sha256:" + entry.sha256
            layers.append(_descriptor(layer_media_type(entry.path), digest, entry.size, entry.path))
            blobs[digest] = root / entry.path
        signature = root / SIGNATURE_NAME
        if signature.is_file():
            digest = "sha256:" + file_sha256(signature)
            layers.append(_descriptor(SIGNATURE_MEDIA_TYPE, digest, signature.stat().st_size, SIGNATURE_NAME))
            blobs[digest] = signature
        lineage = manifest.lineage
        annotations = {"org.opencontainers.image.title": manifest.name, BENTO_DIGEST: manifest.digest}
        if lineage.built_at:
            annotations["org.opencontainers.image.created"] = lineage.built_at
        if lineage.git and lineage.git.commit:
            annotations["org.opencontainers.image.revision"] = lineage.git.commit
        document = {
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "artifactType": ARTIFACT_TYPE,
            "config": _descriptor(CONFIG_MEDIA_TYPE, config_digest, len(config)),
            "layers": layers,
            "annotations": annotations,
        }
        return cls(json.dumps(document, sort_keys=True, separators=(",", ":")).encode(), blobs)


@dataclass(frozen=True)
class PushResult:
    ref: OCIReference  # with the manifest's digest
    uploaded_blobs: int
    skipped_blobs: int  # already in the registry (a file shared with another version, or a re-push)
    uploaded_bytes: int


def push(tag: str, target: str, client: DistributionClient | None = None, store: Store | None = None) -> PushResult:
    """Push local bento ``NAME[:VERSION]`` to ``oci://HOST/REPO[:TAG]``; blobs the registry has are not sent."""
    ref = OCIReference.parse(target)
    if ref.digest:
        raise OCIError(f"push to a tag, not a digest: {target} (the digest is computed from the content)")
    item = (store or Store("bentos")).resolve(tag)
    artifact = Artifact.from_bento(item.path)
    client = client or DistributionClient(ref)
    uploaded = skipped = sent = 0
    for digest, body in artifact.blobs.items():
        if client.has_blob(digest):
            skipped += 1
            continue
        client.upload_blob(digest, body)
        uploaded += 1
        sent += body.stat().st_size if isinstance(body, Path) else len(body)
    digest = client.put_manifest(ref.tag or "latest", artifact.manifest, MANIFEST_MEDIA_TYPE)
    return PushResult(OCIReference(ref.host, ref.repository, ref.tag or "latest", digest), uploaded, skipped, sent)


@dataclass(frozen=True)
class PullResult:
    item: StoredItem
    ref: OCIReference  # with the manifest's digest
    bento_digest: str
    downloaded_bytes: int


def _parse_manifest(body: bytes, ref: OCIReference) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except ValueError:
        raise OCIError(f"{ref}: the manifest is not JSON") from None
    if not isinstance(document, dict) or document.get("mediaType") != MANIFEST_MEDIA_TYPE:
        raise OCIError(f"{ref} is not an OCI image manifest (mediaType {document.get('mediaType')!r})")
    config = document.get("config") or {}
    if document.get("artifactType") != ARTIFACT_TYPE or config.get("mediaType") != CONFIG_MEDIA_TYPE:
        raise OCIError(
            f"{ref} is not a bento (artifactType {document.get('artifactType')!r}): push one with "
            "bento-jupyter oci push"
        )
    return document


def _layers_by_path(document: dict[str, Any], manifest: BentoManifest, ref: OCIReference) -> dict[str, dict]:
    """The layers by file path; they must be exactly the manifest's files (plus, maybe, the signature)."""
    layers: dict[str, dict] = {}
    for layer in document.get("layers") or []:
        path = (layer.get("annotations") or {}).get(FILEPATH)
        if not isinstance(path, str) or path in layers:
            raise OCIError(f"{ref}: a layer has no {FILEPATH} annotation, or repeats one: refused")
        layers[path] = layer
    expected = {entry.path: ("sha256:" + entry.sha256, entry.size) for entry in manifest.files}
    signature = layers.pop(SIGNATURE_NAME, None)
    for path, layer in layers.items():
        if layer.get("mediaType") not in RAW_MEDIA_TYPES:
            raise OCIError(
                f"{ref}: layer {path} is {layer.get('mediaType')!r}, not a raw file: a bento's layers are its files "
                "unarchived (an archive layer is never unpacked), refused"
            )
    found = {path: (layer.get("digest"), layer.get("size")) for path, layer in layers.items()}
    if found != expected:
        differ = sorted(set(found.items()) ^ set(expected.items()))
        raise OCIError(f"{ref}: the layers do not match the bento's file list ({differ[0][0]} differs): refused")
    if signature is not None:
        if signature.get("mediaType") != SIGNATURE_MEDIA_TYPE or not isinstance(signature.get("size"), int):
            raise OCIError(f"{ref}: the {SIGNATURE_NAME} layer is not a Sigstore bundle: refused")
        layers[SIGNATURE_NAME] = signature
    return layers


def _download(client: DistributionClient, layer: dict[str, Any], target: Path) -> int:
    """Stream a layer into ``target``, hashing on the way; a digest or size mismatch raises."""
    digest, size = layer["digest"], layer["size"]
    target.parent.mkdir(parents=True, exist_ok=True)
    hasher, written = hashlib.sha256(), 0
    with target.open("wb") as out:
        for chunk in client.blob_chunks(digest):
            written += len(chunk)
            if written > size:
                break
            hasher.update(chunk)
            out.write(chunk)
    if written != size or "sha256:" + hasher.hexdigest() != digest:
        path = (layer.get("annotations") or {}).get(FILEPATH)
        raise OCIError(f"layer {path} ({digest}) does not match its digest: tampered or corrupt, nothing was stored")
    return written


def pull(
    source: str,
    client: DistributionClient | None = None,
    store: Store | None = None,
    trust: TrustPolicy | None = None,
) -> PullResult:
    """Fetch ``oci://HOST/REPO:TAG`` or ``...@sha256:...`` into the local store, verifying every digest.

    Nothing is visible in the store unless every blob matched: files land in a scratch directory that is
    renamed into place only after the whole bento was re-verified. A bento whose files execute code on load
    is refused (:class:`UntrustedCodeError`) unless ``trust`` vouches for it, as a registry pull does.
    """
    trust = trust or TrustPolicy()
    ref = OCIReference.parse(source)
    client = client or DistributionClient(ref)
    body, digest = client.manifest(ref.reference, MANIFEST_MEDIA_TYPE)
    document = _parse_manifest(body, ref)
    config = client.blob(document["config"]["digest"], MAX_CONFIG_BYTES)
    try:
        content = json.loads(config)
        manifest = check_manifest(content, content.get("name") if isinstance(content, dict) else None)
    except (ValueError, InvalidRequest) as exc:
        raise OCIError(f"{ref}: its bento manifest is invalid: {exc}") from None
    layers = _layers_by_path(document, manifest, ref)
    if trust.trusted_keys is None:  # no signature to look at: decide before downloading anything
        check_trust(Path(manifest.name), manifest, trust)
    store = store or Store("bentos")
    existing = store.with_digest(manifest.name, manifest.digest)
    if existing is not None:  # already here: at most its signature is new
        signature = layers.get(SIGNATURE_NAME)
        if signature is not None and not (existing.path / SIGNATURE_NAME).exists():
            attach_signature(existing.path, client.blob(signature["digest"], MAX_CONFIG_BYTES))
        return PullResult(existing, ref.with_digest(digest), manifest.digest, 0)
    needed = manifest.size
    free = shutil.disk_usage(store.root).free
    if needed > free:
        raise OCIError(f"{ref}: the bento is {needed} bytes and {free} are free: nothing was downloaded")
    downloaded = 0

    def fill(root: Path) -> None:
        nonlocal downloaded
        for path, layer in layers.items():
            downloaded += _download(client, layer, root / path)
        (root / MANIFEST_NAME).write_bytes(config)
        try:
            read_manifest(root)
        except BentoIntegrityError as exc:
            raise OCIError(f"{ref}: {exc}") from None
        check_trust(root, manifest, trust)

    item = store.add(manifest.name, fill)
    return PullResult(item, ref.with_digest(digest), manifest.digest, downloaded)
