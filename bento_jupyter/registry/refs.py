"""What names, aliases, tags, digests and manifest paths may look like, checked before anything else."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from bento_jupyter.bento.manifest import UNLISTED_NAMES, check_references, manifest_digest
from bento_jupyter.bento.store import NAME_PATTERN
from bento_jupyter.errors import BentoIntegrityError
from bento_jupyter.registry.errors import DigestMismatch, InvalidRequest

SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")
DIGEST_PATTERN = re.compile(r"^sha256:[0-9a-f]{64}$")
RESERVED_LABELS = frozenset({"latest"})


def check_name(name: str) -> str:
    """A bento name: the local store's pattern, so it is safe as a path segment anywhere."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise InvalidRequest(f"invalid name {name!r}: use lowercase letters, digits, '.', '_' or '-' (max 64)")
    return name


def check_label(label: str, what: str = "alias") -> str:
    """An alias or tag: the name pattern, but never a number or ``latest`` (those are versions)."""
    if not isinstance(label, str) or not NAME_PATTERN.match(label) or label.isdigit() or label in RESERVED_LABELS:
        raise InvalidRequest(
            f"invalid {what} {label!r}: use lowercase letters, digits, '.', '_' or '-' (max 64), "
            "not only digits, not 'latest'"
        )
    return label


def check_sha256(value: str) -> str:
    if not isinstance(value, str) or not SHA256_PATTERN.match(value):
        raise InvalidRequest(f"invalid sha256 {value!r}: expected 64 lowercase hex digits")
    return value


def check_version(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value < 2**31:
        raise InvalidRequest(f"invalid version {value!r}: expected a positive integer (below 2**31)")
    return value


def check_file_path(path: Any) -> str:
    """A manifest file path that stays inside the bento directory on every OS."""
    if not isinstance(path, str) or not path or "\\" in path or "\x00" in path:
        raise InvalidRequest(f"invalid file path {path!r} in manifest")
    parts = PurePosixPath(path).parts
    if path.startswith("/") or any(part in ("..", ".", "") for part in parts) or path in UNLISTED_NAMES:
        raise InvalidRequest(f"invalid file path {path!r} in manifest: must be relative, without '..'")
    if PurePosixPath(path).as_posix() != path or ":" in parts[0]:
        raise InvalidRequest(f"invalid file path {path!r} in manifest")
    return path


def check_manifest(manifest: Any, name: str) -> dict[str, Any]:
    """A bento manifest whose name, digest and file list hold together; returns it unchanged."""
    if not isinstance(manifest, dict):
        raise InvalidRequest("the manifest must be a JSON object")
    if manifest.get("name") != name:
        raise InvalidRequest(f"the manifest names {manifest.get('name')!r}, not {name!r}")
    digest = manifest.get("digest")
    if not isinstance(digest, str) or not DIGEST_PATTERN.match(digest):
        raise InvalidRequest(f"invalid manifest digest {digest!r}")
    if manifest_digest(manifest) != digest:
        raise DigestMismatch(f"the manifest's digest {digest} does not match its content")
    files = manifest.get("files")
    if not isinstance(files, list):
        raise InvalidRequest("the manifest has no 'files' list")
    seen: set[str] = set()
    for entry in files:
        if not isinstance(entry, dict):
            raise InvalidRequest("every manifest file entry must be an object")
        path = check_file_path(entry.get("path"))
        if path.lower() in seen:
            raise InvalidRequest(f"file {path!r} is listed twice in the manifest")
        seen.add(path.lower())
        check_sha256(entry.get("sha256"))
        size = entry.get("size")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise InvalidRequest(f"invalid size {size!r} for {path!r} in manifest")
    lineage = manifest.get("lineage", {})
    if not isinstance(lineage, dict):
        raise InvalidRequest("the manifest's lineage must be an object")
    try:
        check_references(manifest)
    except BentoIntegrityError as exc:
        raise InvalidRequest(str(exc)) from None
    return manifest


@dataclass(frozen=True)
class RemoteRef:
    """``NAME``, ``NAME:N``, ``NAME:latest`` or ``NAME@ALIAS`` on a registry."""

    name: str
    version: int | None = None
    alias: str | None = None

    @classmethod
    def parse(cls, text: str) -> RemoteRef:
        if "@" in text:
            name, _, alias = text.partition("@")
            return cls(check_name(name), alias=check_label(alias))
        name, _, version = text.partition(":")
        check_name(name)
        if version in ("", "latest"):
            return cls(name)
        if not version.isdigit():
            raise InvalidRequest(f"invalid reference {text!r}: use NAME, NAME:N, NAME:latest or NAME@ALIAS")
        return cls(name, version=check_version(int(version)))

    def __str__(self) -> str:
        if self.alias:
            return f"{self.name}@{self.alias}"
        return f"{self.name}:{self.version}" if self.version else f"{self.name}:latest"
