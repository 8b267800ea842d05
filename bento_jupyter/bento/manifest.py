"""The bento manifest: canonical JSON in ``bento.yaml`` whose digest covers every file."""

from __future__ import annotations

import hashlib
import json
import os
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bento_jupyter.errors import BentoIntegrityError

SCHEMA_VERSION = 1
MANIFEST_NAME = "bento.yaml"
MODEL_MANIFEST_NAME = "model.yaml"
MANIFEST_NAMES = frozenset({MANIFEST_NAME, MODEL_MANIFEST_NAME})
# The signature over a bento (bento/signing.py) sits beside the manifest and, like it, is not a listed file.
SIGNATURE_NAME = "bento.sig"
UNLISTED_NAMES = MANIFEST_NAMES | {SIGNATURE_NAME}
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


def list_files(root: Path) -> list[dict[str, Any]]:
    """Every file of a bento directory but the manifest: path, size, sha256."""
    return [
        {"path": p.relative_to(root).as_posix(), "size": p.stat().st_size, "sha256": file_sha256(p)}
        for p in _files_under(root)
    ]


def manifest_digest(manifest: dict[str, Any]) -> str:
    """sha256 of the canonical manifest without its own ``digest`` field."""
    body = {k: v for k, v in manifest.items() if k != "digest"}
    return "sha256:" + hashlib.sha256(canonical_json(body)).hexdigest()


def write_manifest(root: Path, manifest: dict[str, Any], name: str = MANIFEST_NAME) -> dict[str, Any]:
    """Fill in schema version, file list and digest, and write the manifest file."""
    manifest = {**manifest, "schema_version": SCHEMA_VERSION, "files": list_files(root)}
    manifest["digest"] = manifest_digest(manifest)
    (root / name).write_text(json.dumps(manifest, sort_keys=True, indent=2, ensure_ascii=False))
    return manifest


def read_manifest(root: Path, verify_files: bool = True, name: str = MANIFEST_NAME) -> dict[str, Any]:
    """Read and validate a manifest; refuse any file that is missing, extra or altered."""
    path = root / name
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise BentoIntegrityError(f"{root}: {name} is missing") from None
    except ValueError as exc:
        raise BentoIntegrityError(f"{path} is corrupt: {exc}") from None
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise BentoIntegrityError(f"{path}: unsupported schema version {manifest.get('schema_version')!r}")
    if manifest.get("digest") != manifest_digest(manifest):
        raise BentoIntegrityError(f"{path}: manifest digest mismatch (the manifest was edited)")
    if verify_files:
        verify_file_list(root, manifest["files"])
    return manifest


def referenced_files(manifest: dict[str, Any]) -> list[Any]:
    """Every path a loader opens, relative to the bento: the source module and each model's files."""
    paths: list[Any] = [manifest["source"]] if "source" in manifest else []
    for entry in manifest.get("models") or []:
        files = entry.get("files") if isinstance(entry, dict) else None
        if not isinstance(files, list):
            raise BentoIntegrityError(f"model entry {entry!r} has no 'files' list")
        paths += [f"models/{name}" if isinstance(name, str) else name for name in files]
    return paths


def check_references(manifest: dict[str, Any]) -> None:
    """Refuse a manifest whose source or model files are not among its own verified files."""
    listed = {entry.get("path") for entry in manifest.get("files") or [] if isinstance(entry, dict)}
    for path in referenced_files(manifest):
        if not isinstance(path, str) or path not in listed:
            raise BentoIntegrityError(f"the manifest refers to {path!r}, which is not one of its verified files")


def folded_path(path: str) -> str:
    """How a case-insensitive filesystem (macOS, Windows) sees a path: two paths folding alike collide."""
    return unicodedata.normalize("NFC", path).casefold()


def verified_path(root: Path, manifest: dict[str, Any], relative: str) -> Path:
    """``root/relative`` if it is a verified file of the bento and lies inside ``root``; else refuse."""
    listed = {entry.get("path") for entry in manifest["files"]}
    if relative not in listed:
        raise BentoIntegrityError(f"{root}: {relative!r} is not one of the bento's verified files")
    path = root / relative
    if path.is_symlink() or not path.resolve().is_relative_to(root.resolve()):
        raise BentoIntegrityError(f"{root}: {relative!r} points outside the bento")
    return path


def verify_file_list(root: Path, expected: list[dict[str, Any]]) -> None:
    listed = {entry["path"]: entry for entry in expected}
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
        if path.stat().st_size != entry["size"]:
            raise BentoIntegrityError(f"{root}: file {name} has the wrong size (truncated or altered)")
        if file_sha256(path) != entry["sha256"]:
            raise BentoIntegrityError(f"{root}: file {name} does not match its sha256 (altered)")
