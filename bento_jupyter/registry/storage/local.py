"""Content-addressed blob storage: files keyed by sha256, verified on arrival, landed atomically."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from bento_jupyter.registry.errors import DigestMismatch, NotFound
from bento_jupyter.registry.storage.base import CHUNK, STALE_UPLOAD_S, BlobUpload, StoredBlob
from bento_jupyter.registry.validation import check_sha256


class _LocalUpload:
    def __init__(self, store: LocalBlobStore, sha256: str) -> None:
        self._target = store.path(sha256)
        self._sha256 = sha256
        self._hash = hashlib.sha256()
        handle, name = tempfile.mkstemp(prefix=f"{sha256[:12]}-", dir=store.uploads)
        self._tmp = Path(name)
        self._file = os.fdopen(handle, "wb")

    def write(self, data: bytes) -> None:
        self._hash.update(data)
        self._file.write(data)

    def commit(self) -> None:
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            if self._hash.hexdigest() != self._sha256:
                raise DigestMismatch(f"the upload's sha256 is {self._hash.hexdigest()}, not {self._sha256}")
            self._target.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(self._tmp, 0o444)
            os.replace(self._tmp, self._target)  # atomic: the blob is whole or absent
        finally:
            self.abort()

    def abort(self) -> None:
        self._file.close()
        with contextlib.suppress(FileNotFoundError):
            self._tmp.unlink()


class LocalBlobStore:
    """Blobs as read-only files ``ROOT/sha256/ab/abcd...``; uploads land there by rename from ``ROOT/uploads``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.uploads = root / "uploads"
        self.uploads.mkdir(parents=True, exist_ok=True)
        (root / "sha256").mkdir(exist_ok=True)
        self.sweep()

    def __repr__(self) -> str:
        return f"file://{self.root}"

    def path(self, sha256: str) -> Path:
        check_sha256(sha256)
        return self.root / "sha256" / sha256[:2] / sha256

    def sweep(self) -> None:
        """Remove uploads abandoned by a killed server."""
        cutoff = time.time() - STALE_UPLOAD_S
        for entry in self.uploads.iterdir():
            with contextlib.suppress(FileNotFoundError):
                if entry.stat().st_mtime < cutoff:
                    entry.unlink()

    def size(self, sha256: str) -> int | None:
        try:
            return self.path(sha256).stat().st_size
        except FileNotFoundError:
            return None

    def begin(self, sha256: str) -> BlobUpload:
        check_sha256(sha256)
        return _LocalUpload(self, sha256)

    def open(self, sha256: str) -> Iterator[bytes]:
        try:
            handle = self.path(sha256).open("rb")
        except FileNotFoundError:
            raise NotFound(f"no blob {sha256}") from None

        def chunks() -> Iterator[bytes]:
            with handle:
                while data := handle.read(CHUNK):
                    yield data

        return chunks()

    def list(self) -> Iterator[StoredBlob]:
        for path in (self.root / "sha256").glob("??/*"):
            with contextlib.suppress(FileNotFoundError):
                stat = path.stat()
                if len(path.name) == 64:
                    yield StoredBlob(path.name, stat.st_size, datetime.fromtimestamp(stat.st_mtime, timezone.utc))

    def delete(self, sha256: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(sha256).unlink()
