"""The bento manifest: canonical JSON in ``bento.yaml`` whose digest covers every file."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bento_jupyter.bento.manifest_model import SCHEMA_VERSION, BentoManifest, FileEntry
from bento_jupyter.bento.manifest_paths import MANIFEST_NAME, UNLISTED_NAMES
from bento_jupyter.errors import BentoIntegrityError

_CHUNK = 1 << 20


def canonical_json(value: Any) -> bytes:
    """Sorted keys, fixed separators, UTF-8: equal manifests have equal bytes (and JSON is YAML)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _files_under(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath, name)
            if path.relative_to(root).as_posix() not in UNLISTED_NAMES:
                yield path


def list_files(root: Path) -> list[FileEntry]:
    """Every file of a bento directory but the manifest: path, size, sha256."""
    return [
        FileEntry(path=p.relative_to(root).as_posix(), size=p.stat().st_size, sha256=file_sha256(p))
        for p in _files_under(root)
    ]


def manifest_digest(manifest: dict[str, Any]) -> str:
    """sha256 of the canonical manifest without its own ``digest`` field."""
    body = {k: v for k, v in manifest.items() if k != "digest"}
    return "sha256:" + hashlib.sha256(canonical_json(body)).hexdigest()


def write_manifest(root: Path, manifest: BentoManifest, name: str = MANIFEST_NAME) -> BentoManifest:
    """Fill in schema version, file list and digest, write the manifest file, and return it as read back."""
    document = manifest.replace(schema_version=SCHEMA_VERSION, files=list_files(root)).document
    document["digest"] = manifest_digest(document)
    written = BentoManifest.from_document(document, str(root / name))
    (root / name).write_bytes(manifest_file_bytes(written))
    return written


def manifest_file_bytes(manifest: BentoManifest) -> bytes:
    """``bento.yaml`` as written at build and re-written by a pull: what a signature covers."""
    return json.dumps(manifest.document, sort_keys=True, indent=2, ensure_ascii=False).encode()


def read_manifest(root: Path, verify_files: bool = True, name: str = MANIFEST_NAME) -> BentoManifest:
    """Read and validate a manifest; refuse any file that is missing, extra or altered.

    Raises :class:`BentoIntegrityError` (:class:`InvalidManifest` for a field of the wrong shape)."""
    path = root / name
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise BentoIntegrityError(f"{root}: {name} is missing") from None
    except ValueError as exc:
        raise BentoIntegrityError(f"{path} is corrupt: {exc}") from None
    if not isinstance(document, dict):
        raise BentoIntegrityError(f"{path} is corrupt: not a JSON object")
    if document.get("schema_version") != SCHEMA_VERSION:
        raise BentoIntegrityError(f"{path}: unsupported schema version {document.get('schema_version')!r}")
    if document.get("digest") != manifest_digest(document):
        raise BentoIntegrityError(f"{path}: manifest digest mismatch (the manifest was edited)")
    manifest = BentoManifest.from_document(document, str(path))
    if verify_files:
        verify_file_list(root, manifest.files)
    return manifest


def referenced_files(manifest: BentoManifest) -> list[str]:
    """Every path a loader opens, relative to the bento: the source module and each model's files."""
    paths = [manifest.source] if manifest.source is not None else []
    for entry in manifest.models:
        paths += entry.paths
    return paths


def check_references(manifest: BentoManifest) -> None:
    """Refuse a manifest whose source or model files are not among its own verified files."""
    listed = manifest.listed_paths
    for path in referenced_files(manifest):
        if path not in listed:
            raise BentoIntegrityError(f"the manifest refers to {path!r}, which is not one of its verified files")


def verified_path(root: Path, manifest: BentoManifest, relative: str) -> Path:
    """``root/relative`` if it is a verified file of the bento and lies inside ``root``; else refuse."""
    if relative not in manifest.listed_paths:
        raise BentoIntegrityError(f"{root}: {relative!r} is not one of the bento's verified files")
    path = root / relative
    if path.is_symlink() or not path.resolve().is_relative_to(root.resolve()):
        raise BentoIntegrityError(f"{root}: {relative!r} points outside the bento")
    return path


def verify_file_list(root: Path, expected: list[FileEntry]) -> None:
    listed = {entry.path: entry for entry in expected}
    present = {p.relative_to(root).as_posix(): p for p in _files_under(root)}
    for name, path in sorted(present.items()):
        if path.is_symlink():
            raise BentoIntegrityError(f"{root}: file {name} is a symbolic link (a bento holds plain files only)")
    for name in sorted(set(listed) - set(present)):
        raise BentoIntegrityError(f"{root}: file {name} is missing")
    for name in sorted(set(present) - set(listed)):
        raise BentoIntegrityError(f"{root}: unexpected file {name} is not in the manifest")
    for name, entry in listed.items():
        path = present[name]
        if path.stat().st_size != entry.size:
            raise BentoIntegrityError(f"{root}: file {name} has the wrong size (truncated or altered)")
        if file_sha256(path) != entry.sha256:
            raise BentoIntegrityError(f"{root}: file {name} does not match its sha256 (altered)")
