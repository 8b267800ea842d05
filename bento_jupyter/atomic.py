"""Writes that land whole or not at all: a file or a directory is written under a scratch name on the same
filesystem, then renamed into place in one step. Readers see the old content or the new, never a part; a
failure leaves only what was there. An existing non-empty output directory is replaced only when forced."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from bento_jupyter.errors import ExportError


@contextlib.contextmanager
def replacing(target: Path, *, scratch_dir: Path | None = None, mode: int = 0o600) -> Iterator[Path]:
    """Yield a new, empty scratch file (``mode``, created exclusively) in ``scratch_dir`` (default: beside
    ``target``; same filesystem); when the block succeeds it is renamed over ``target``, otherwise removed."""
    handle, name = tempfile.mkstemp(prefix=f".{target.name}-", dir=scratch_dir or target.parent)  # 0600
    os.close(handle)
    scratch = Path(name)
    try:
        if mode != 0o600:
            scratch.chmod(mode)
        yield scratch
        os.replace(scratch, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            scratch.unlink()


def write_file(target: Path, data: bytes, *, scratch_dir: Path | None = None, mode: int = 0o600) -> None:
    """Write ``data`` to ``target`` atomically (see :func:`replacing`); the file is created with ``mode``."""
    with replacing(target, scratch_dir=scratch_dir, mode=mode) as scratch:
        scratch.write_bytes(data)


def check_target(out: Path, force: bool) -> None:
    """Refuse a target that is a file, or a non-empty directory unless ``force``."""
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ExportError(f"{out} is not empty: choose another directory, or pass --force to replace it")


def _missing_parents(out: Path) -> list[Path]:
    """The ancestors of ``out`` that do not exist yet, nearest first."""
    return [parent for parent in out.parents if not parent.exists()]


@contextlib.contextmanager
def staged_directory(out: Path, force: bool = False) -> Iterator[Path]:
    """Yield an absolute scratch directory; when the block succeeds it becomes ``out``, otherwise it vanishes.

    ``out`` is resolved against the caller's working directory (the scratch path may be handed to a kernel
    whose working directory differs). A failure also removes the parent directories this call created.
    """
    out = out.absolute()
    check_target(out, force)
    created = _missing_parents(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    work.chmod(0o777 & ~umask)  # mkdtemp's 0700 would otherwise become the published directory's mode
    published = False
    try:
        yield work
        _publish(work, out, force)
        published = True
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if not published:
            for parent in created:
                with contextlib.suppress(OSError):  # not empty: something else was put there meanwhile
                    parent.rmdir()


def _publish(work: Path, out: Path, force: bool) -> None:
    check_target(out, force)  # again: the target may have changed while the work ran
    if not out.exists():
        os.rename(work, out)
        return
    if not any(out.iterdir()):
        out.rmdir()
        os.rename(work, out)
        return
    retired = Path(tempfile.mkdtemp(prefix=f".{out.name}-replaced-", dir=out.parent))
    os.rename(out, retired / out.name)
    os.rename(work, out)
    shutil.rmtree(retired, ignore_errors=True)
