"""What a manifest's file list may hold: paths inside the bento that every filesystem can hold at once.

One check for every way a manifest arrives: a registry publish, a pull, an OCI artifact, ``bentos import``."""

from __future__ import annotations

import re
import unicodedata
from pathlib import PurePosixPath
from typing import Any

from bento_jupyter.errors import InvalidManifest

MANIFEST_NAME = "bento.yaml"
MODEL_MANIFEST_NAME = "model.yaml"
MANIFEST_NAMES = frozenset({MANIFEST_NAME, MODEL_MANIFEST_NAME})
# The signature over a bento (bento/signing.py) sits beside the manifest and, like it, is not a listed file.
SIGNATURE_NAME = "bento.sig"
UNLISTED_NAMES = MANIFEST_NAMES | {SIGNATURE_NAME}

SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")
MAX_SIZE = 2**63 - 1  # sizes are BIGINT columns in a registry
MAX_FILES = 100_000
MAX_PATH_BYTES = 1024
MAX_COMPONENT_BYTES = 255  # what ext4, APFS, NTFS hold
MAX_PATH_DEPTH = 32


def folded_path(path: str) -> str:
    """How a case-insensitive filesystem (macOS, Windows) sees a path: two paths folding alike collide."""
    return unicodedata.normalize("NFC", path).casefold()


def check_file_path(path: Any) -> str:
    """A manifest file path that stays inside the bento directory and that every filesystem can hold; returns it,
    or raises :class:`InvalidManifest`."""
    if not isinstance(path, str) or not path or "\\" in path or any(ord(c) < 32 or c == "\x7f" for c in path):
        raise InvalidManifest(f"invalid file path {path!r} in manifest: no backslashes or control characters")
    parts = PurePosixPath(path).parts
    if path.startswith("/") or any(part in ("..", ".", "") for part in path.split("/")) or path in UNLISTED_NAMES:
        raise InvalidManifest(f"invalid file path {path!r} in manifest: must be relative, without '..' or '.'")
    if PurePosixPath(path).as_posix() != path or ":" in parts[0]:
        raise InvalidManifest(f"invalid file path {path!r} in manifest")
    if len(path.encode()) > MAX_PATH_BYTES or len(parts) > MAX_PATH_DEPTH:
        raise InvalidManifest(
            f"file path {path[:80]!r}... in manifest is too long: "
            f"at most {MAX_PATH_BYTES} bytes and {MAX_PATH_DEPTH} levels"
        )
    if any(len(part.encode()) > MAX_COMPONENT_BYTES for part in parts):
        raise InvalidManifest(f"a component of {path[:80]!r} in manifest is over {MAX_COMPONENT_BYTES} bytes")
    return path


def check_file_list(files: Any) -> None:
    """Entries (``path``, ``sha256``, ``size``) whose paths can all exist at once in one directory, on any
    filesystem: each passes :func:`check_file_path`, no two the same up to case, none both a file and a directory
    (``x`` and ``x/y``). Raises :class:`InvalidManifest`."""
    if not isinstance(files, list):
        raise InvalidManifest("the manifest has no 'files' list")
    if len(files) > MAX_FILES:
        raise InvalidManifest(f"the manifest lists {len(files)} files: at most {MAX_FILES}")
    seen: set[str] = set()
    directories: dict[str, str] = {}
    total = 0
    for entry in files:
        if not isinstance(entry, dict):
            raise InvalidManifest("every manifest file entry must be an object")
        path = check_file_path(entry.get("path"))
        folded = folded_path(path)
        if folded in seen:
            raise InvalidManifest(f"file {path!r} is listed twice in the manifest (names differing in case collide)")
        seen.add(folded)
        parts = folded.split("/")
        for depth in range(1, len(parts)):
            directories.setdefault("/".join(parts[:depth]), path)
        digest = entry.get("sha256")
        if not isinstance(digest, str) or not SHA256_PATTERN.fullmatch(digest):
            raise InvalidManifest(f"invalid sha256 {digest!r} for {path!r} in manifest: 64 lowercase hex digits")
        size = entry.get("size")
        if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_SIZE:
            raise InvalidManifest(f"invalid size {size!r} for {path!r} in manifest")
        total += size
    for folded in seen & directories.keys():
        raise InvalidManifest(f"{directories[folded]!r} needs a directory where the manifest lists a file {folded!r}")
    if total > MAX_SIZE:
        raise InvalidManifest("the manifest's files add up to more bytes than a registry records")
