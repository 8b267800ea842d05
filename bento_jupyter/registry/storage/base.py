"""What a blob store is: content-addressed blobs (by sha256), written through an upload that commits or aborts."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

CHUNK = 1 << 20
STALE_UPLOAD_S = 24 * 3600


class BlobUpload(Protocol):
    """One blob arriving in pieces: ``write`` them, then ``commit`` (verify and land) or ``abort``."""

    def write(self, data: bytes) -> None: ...

    def commit(self) -> None: ...

    def abort(self) -> None: ...


@dataclass(frozen=True)
class StoredBlob:
    """One blob as its store lists it: digest, size in bytes, when it was written (UTC)."""

    sha256: str
    size: int
    modified: datetime


class BlobStore(Protocol):
    """Where blobs live. Keys are sha256 hex digests, checked before any use."""

    def size(self, sha256: str) -> int | None:
        """The stored blob's size, or None when it is absent."""
        ...

    def begin(self, sha256: str) -> BlobUpload: ...

    def open(self, sha256: str) -> Iterator[bytes]:
        """The blob's bytes in chunks (NotFound when absent)."""
        ...

    def list(self) -> Iterator[StoredBlob]:
        """Every stored blob (not uploads in progress)."""
        ...

    def delete(self, sha256: str) -> None:
        """Remove a blob; removing an absent one is not an error."""
        ...
