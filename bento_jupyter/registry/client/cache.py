"""The client's blob cache: downloads keyed by sha256, so a blob already here is never fetched again."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

from bento_jupyter.atomic import replacing
from bento_jupyter.paths import home
from bento_jupyter.registry.errors import RegistryIntegrityError
from bento_jupyter.registry.validation import check_sha256

CHUNK = 1 << 20


def default_cache_root() -> Path:
    return home() / "cache" / "blobs"


class BlobCache:
    """Verified blobs under ``ROOT/sha256/ab/abcd...``; partial downloads never show there, and those of
    interrupted pulls are removed by the next one."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or default_cache_root()
        self._partial = self.root / "partial"
        self._partial.mkdir(parents=True, exist_ok=True)
        self._sweep_partial()

    def _sweep_partial(self) -> None:
        """Remove downloads left by pulls that died: a download in progress holds a lock on its file."""
        for leftover in self._partial.iterdir():
            with contextlib.suppress(OSError), leftover.open("rb") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises while its pull still runs
                leftover.unlink()

    def path(self, sha256: str) -> Path:
        check_sha256(sha256)
        return self.root / "sha256" / sha256[:2] / sha256

    def has(self, sha256: str, size: int) -> bool:
        try:
            return self.path(sha256).stat().st_size == size
        except FileNotFoundError:
            return False

    def evict(self, sha256: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(sha256).unlink()

    def put(self, sha256: str, chunks: Iterable[bytes], on_bytes: Callable[[int], None], source: str) -> Path:
        """Write ``chunks`` to the cache if and only if their sha256 is ``sha256``."""
        target = self.path(sha256)
        digest = hashlib.sha256()
        with replacing(target, scratch_dir=self._partial) as scratch:
            with scratch.open("wb") as out:
                fcntl.flock(out, fcntl.LOCK_EX)  # released when the file closes, or when this process dies
                for chunk in chunks:
                    digest.update(chunk)
                    out.write(chunk)
                    on_bytes(len(chunk))
            if digest.hexdigest() != sha256:
                raise RegistryIntegrityError(
                    f"blob {sha256} from {source} is corrupted (its content hashes to {digest.hexdigest()}): refused"
                )
            target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def copy_to(self, sha256: str, destination: Path) -> None:
        """Copy a cached blob to ``destination``, re-verifying it (a corrupted cache entry is evicted)."""
        digest = hashlib.sha256()
        destination.parent.mkdir(parents=True, exist_ok=True)
        with self.path(sha256).open("rb") as source, destination.open("wb") as out:
            while chunk := source.read(CHUNK):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != sha256:
            self.evict(sha256)
            raise RegistryIntegrityError(f"cached blob {sha256} was corrupted; it was removed: pull again")

    def clear(self) -> None:
        shutil.rmtree(self.root / "sha256", ignore_errors=True)
