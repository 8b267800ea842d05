"""What digests, JSON bodies and manifests (their file paths and sizes) may look like, checked before anything else.

Names, aliases, tags and versions: :mod:`bento_jupyter.refs`."""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any

from bento_jupyter.bento.manifest import UNLISTED_NAMES, check_references, folded_path, manifest_digest
from bento_jupyter.errors import BentoIntegrityError
from bento_jupyter.registry.errors import DigestMismatch, InvalidRequest

SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")
DIGEST_PATTERN = re.compile(r"sha256:[0-9a-f]{64}")
MAX_SIZE = 2**63 - 1  # sizes are BIGINT columns
MAX_JSON_DEPTH = 64  # a manifest nests a few levels; 1,000 levels would exhaust the parser's stack
MAX_FILES = 100_000
MAX_PATH_BYTES = 1024
MAX_COMPONENT_BYTES = 255  # what ext4, APFS, NTFS hold
MAX_PATH_DEPTH = 32
RECORD_ID_PATTERN = re.compile(r"[0-9a-f]{12}")  # token and webhook ids: secrets.token_hex(6)


def check_sha256(value: Any) -> str:
    if not isinstance(value, str) or not SHA256_PATTERN.fullmatch(value):
        raise InvalidRequest(f"invalid sha256 {value!r}: expected 64 lowercase hex digits")
    return value


def check_record_id(value: str, what: str) -> str:
    """A token's or webhook's id, as the registry makes them: 12 lowercase hex digits."""
    if not RECORD_ID_PATTERN.fullmatch(value):
        raise InvalidRequest(f"invalid {what} id {value[:80]!r}: 12 lowercase hex digits")
    return value


def check_json_depth(value: Any, limit: int = MAX_JSON_DEPTH) -> Any:
    """Refuse JSON nested deeper than ``limit`` levels (walked without recursion); returns ``value``."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                raise InvalidRequest(f"the JSON body is nested more than {limit} levels deep")
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return value


def check_file_path(path: Any) -> str:
    """A manifest file path that stays inside the bento directory and that every filesystem can hold."""
    if not isinstance(path, str) or not path or "\\" in path or any(ord(c) < 32 or c == "\x7f" for c in path):
        raise InvalidRequest(f"invalid file path {path!r} in manifest: no backslashes or control characters")
    parts = PurePosixPath(path).parts
    if path.startswith("/") or any(part in ("..", ".", "") for part in parts) or path in UNLISTED_NAMES:
        raise InvalidRequest(f"invalid file path {path!r} in manifest: must be relative, without '..'")
    if PurePosixPath(path).as_posix() != path or ":" in parts[0]:
        raise InvalidRequest(f"invalid file path {path!r} in manifest")
    if len(path.encode()) > MAX_PATH_BYTES or len(parts) > MAX_PATH_DEPTH:
        raise InvalidRequest(
            f"file path {path[:80]!r}... in manifest is too long: "
            f"at most {MAX_PATH_BYTES} bytes and {MAX_PATH_DEPTH} levels"
        )
    if any(len(part.encode()) > MAX_COMPONENT_BYTES for part in parts):
        raise InvalidRequest(f"a component of {path[:80]!r} in manifest is over {MAX_COMPONENT_BYTES} bytes")
    return path


def check_file_list(files: Any) -> None:
    """Paths that can all exist at once in one directory, on any filesystem: no two the same up to case,
    none both a file and a directory (``x`` and ``x/y``)."""
    if not isinstance(files, list):
        raise InvalidRequest("the manifest has no 'files' list")
    if len(files) > MAX_FILES:
        raise InvalidRequest(f"the manifest lists {len(files)} files: at most {MAX_FILES}")
    seen: set[str] = set()
    directories: dict[str, str] = {}
    total = 0
    for entry in files:
        if not isinstance(entry, dict):
            raise InvalidRequest("every manifest file entry must be an object")
        path = check_file_path(entry.get("path"))
        folded = folded_path(path)
        if folded in seen:
            raise InvalidRequest(f"file {path!r} is listed twice in the manifest (names differing in case collide)")
        seen.add(folded)
        parts = folded.split("/")
        for depth in range(1, len(parts)):
            directories.setdefault("/".join(parts[:depth]), path)
        check_sha256(entry.get("sha256"))
        size = entry.get("size")
        if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_SIZE:
            raise InvalidRequest(f"invalid size {size!r} for {path!r} in manifest")
        total += size
    for folded in seen & directories.keys():
        raise InvalidRequest(f"{directories[folded]!r} needs a directory where the manifest lists a file {folded!r}")
    if total > MAX_SIZE:
        raise InvalidRequest("the manifest's files add up to more bytes than a registry records")


def check_manifest(manifest: Any, name: Any) -> dict[str, Any]:
    """A bento manifest whose name, digest and file list hold together; returns it unchanged."""
    if not isinstance(manifest, dict):
        raise InvalidRequest("the manifest must be a JSON object")
    check_json_depth(manifest)
    digest = manifest.get("digest")
    if not isinstance(digest, str) or not DIGEST_PATTERN.fullmatch(digest):
        raise InvalidRequest(f"invalid manifest digest {digest!r}")
    try:
        computed = manifest_digest(manifest)
    except UnicodeEncodeError:
        raise InvalidRequest("the manifest holds a lone surrogate escape: not Unicode text") from None
    if computed != digest:
        raise DigestMismatch(f"the manifest's digest {digest} does not match its content")
    if manifest.get("name") != name:
        raise InvalidRequest(f"the manifest names {manifest.get('name')!r}, not {name!r}")
    check_file_list(manifest.get("files"))
    lineage = manifest.get("lineage", {})
    if not isinstance(lineage, dict):
        raise InvalidRequest("the manifest's lineage must be an object")
    try:
        check_references(manifest)
    except BentoIntegrityError as exc:
        raise InvalidRequest(str(exc)) from None
    return manifest
