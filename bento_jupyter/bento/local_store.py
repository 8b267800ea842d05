"""The local store under ``$BENTO_JUPYTER_HOME``: bentos and models by ``name:version``.

Versions are integers allocated by an atomic directory rename, so two kernels building the same
name at once both succeed with distinct versions, and a build killed half-way leaves nothing
visible (only a scratch directory, swept later).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bento_jupyter.bento.manifest import read_manifest
from bento_jupyter.bento.manifest_model import BentoManifest
from bento_jupyter.bento.manifest_paths import MANIFEST_NAME, MODEL_MANIFEST_NAME
from bento_jupyter.errors import BentoIntegrityError, BentoNotFoundError, InvalidReference
from bento_jupyter.paths import home
from bento_jupyter.refs import VERSION_PATTERN, Reference, check_name

_SCRATCH = ".scratch"
_STALE_SCRATCH_S = 24 * 3600


@dataclass(frozen=True)
class StoredItem:
    """One version of a bento or model in the store."""

    name: str
    version: int
    path: Path

    @property
    def tag(self) -> str:
        return f"{self.name}:{self.version}"


class Store:
    """One kind of item (``bentos`` or ``models``) under the store root."""

    def __init__(self, kind: str, root: Path | None = None) -> None:
        self.root = (root or home()) / kind
        self.root.mkdir(parents=True, exist_ok=True)
        self._scratch = self.root / _SCRATCH
        self._scratch.mkdir(exist_ok=True)
        self.manifest_name = MODEL_MANIFEST_NAME if kind == "models" else MANIFEST_NAME

    def add(self, name: str, fill: Callable[[Path], Any]) -> StoredItem:
        """Let ``fill`` write a new version in a scratch directory, then publish it atomically."""
        check_name(name)
        self._sweep_scratch()
        work = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self._scratch))
        try:
            fill(work)
            target_dir = self.root / name
            target_dir.mkdir(exist_ok=True)
            version = self._latest_number(name) + 1
            while True:
                try:
                    os.rename(work, target_dir / str(version))
                    return StoredItem(name, version, target_dir / str(version))
                except OSError:
                    if not (target_dir / str(version)).exists():
                        raise
                    version += 1
        finally:
            if work.exists():
                shutil.rmtree(work, ignore_errors=True)

    def _sweep_scratch(self) -> None:
        cutoff = time.time() - _STALE_SCRATCH_S
        for entry in self._scratch.iterdir():
            if entry.stat().st_mtime < cutoff:
                shutil.rmtree(entry, ignore_errors=True)

    def _versions(self, name: str) -> list[int]:
        directory = self.root / name
        if not directory.is_dir():
            return []
        return sorted(int(p.name) for p in directory.iterdir() if VERSION_PATTERN.fullmatch(p.name))

    def _latest_number(self, name: str) -> int:
        versions = self._versions(name)
        return versions[-1] if versions else 0

    def resolve(self, tag: str) -> StoredItem:
        """``name``, ``name:latest`` or ``name:N`` to a stored version (InvalidReference for anything else,
        BentoNotFoundError when it is not stored)."""
        ref = Reference.parse(tag)
        if ref.alias is not None:
            raise InvalidReference(f"{tag}: aliases live in a registry; the local store has NAME:N or NAME:latest")
        name, number = ref.name, ref.version or self._latest_number(ref.name)
        if not number:
            raise BentoNotFoundError(f"nothing named {name!r} in {self.root}")
        path = self.root / name / str(number)
        if not path.is_dir():
            raise BentoNotFoundError(f"{name}:{number} is not in {self.root}")
        return StoredItem(name, number, path)

    def list(self, name: str | None = None) -> list[StoredItem]:
        names = [name] if name else sorted(p.name for p in self.root.iterdir() if p.name != _SCRATCH)
        return [StoredItem(n, v, self.root / n / str(v)) for n in names for v in self._versions(n)]

    def manifest(self, tag: str) -> BentoManifest:
        return read_manifest(self.resolve(tag).path, verify_files=False, name=self.manifest_name)

    def with_digest(self, name: str, digest: str) -> StoredItem | None:
        """The newest stored version of ``name`` whose manifest digest is ``digest`` (a pull need not repeat it)."""
        for item in reversed(self.list(name)):
            try:
                if read_manifest(item.path, verify_files=False, name=self.manifest_name).digest == digest:
                    return item
            except BentoIntegrityError:
                continue
        return None

    def delete(self, tag: str) -> StoredItem:
        item = self.resolve(tag)
        doomed = self._scratch / f"deleted-{item.name}-{item.version}-{os.getpid()}"
        os.rename(item.path, doomed)  # disappears atomically, then is removed
        shutil.rmtree(doomed, ignore_errors=True)
        return item
