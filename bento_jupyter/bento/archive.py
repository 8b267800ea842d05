"""A bento as one file, to carry it where no registry reaches: ``bentos export`` / ``bentos import``, as BentoML's
``bentoml export`` / ``bentoml import`` do.

The archive is a tar file (gzip-compressed by default) whose first member is ``bento.yaml``, then ``bento.sig``
when the bento is signed, then every file the manifest lists. Importing reads the manifest first and lets in
only what it lists, each member checked before a byte of it is written: plain files only (no link, device or
FIFO), no name twice or twice up to case, no path leaving the bento (tarfile's ``data`` filter, PEP 706), and
no more bytes than the manifest declares, the whole within a bounded expansion of the archive's own size. The
files land in a scratch directory that enters the store only once every digest verified and the trust
decision (``--trust-code``, a trusted signature) allowed it.
"""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import shutil
import tarfile
from pathlib import Path
from typing import IO, cast

from bento_jupyter.atomic import replacing
from bento_jupyter.bento.local_store import Store, StoredItem
from bento_jupyter.bento.manifest import read_manifest
from bento_jupyter.bento.manifest_model import BentoManifest
from bento_jupyter.bento.manifest_paths import (
    MANIFEST_NAME,
    SIGNATURE_NAME,
    check_file_list,
    check_file_path,
    folded_path,
)
from bento_jupyter.bento.trust import TrustPolicy, check_trust
from bento_jupyter.errors import BentoIntegrityError, BentoJupyterError, InvalidManifest
from bento_jupyter.refs import check_name

MAX_MANIFEST_BYTES = 64 << 20
MAX_SIGNATURE_BYTES = 1 << 20
MAX_MEMBERS = 100_000
# A decompression bomb unpacks to far more than it weighs: past the floor, at most this many times its size.
MAX_EXPANSION = 200
EXPANSION_FLOOR = 256 << 20
_BLOCK = tarfile.BLOCKSIZE


class BentoArchiveError(BentoJupyterError):
    """An archive that is not a bento this release can import; nothing was written."""


def export_archive(root: Path, target: Path) -> Path:
    """Write the bento at ``root`` (every file re-verified first) to the gzip-compressed tar ``target``,
    atomically: a failed export leaves no partial file."""
    manifest = read_manifest(root)
    names = [MANIFEST_NAME, *([SIGNATURE_NAME] if (root / SIGNATURE_NAME).is_file() else [])]
    names += [entry.path for entry in manifest.files]
    target.parent.mkdir(parents=True, exist_ok=True)
    with (
        replacing(target, mode=0o644) as scratch,  # 0644: a file meant to travel
        tarfile.open(scratch, "w:gz", format=tarfile.PAX_FORMAT) as tar,
    ):
        for name in names:
            tar.add(root / name, arcname=name, recursive=False, filter=_plain)
    return target


def _plain(member: tarfile.TarInfo) -> tarfile.TarInfo:
    member.uid = member.gid = 0
    member.uname = member.gname = ""
    member.mode = 0o644
    return member


def import_archive(archive: Path, store: Store | None = None, trust: TrustPolicy | None = None) -> StoredItem:
    """Add the bento in ``archive`` to the local store as a new version; :class:`BentoArchiveError` (nothing
    written) for anything but a bento's own verified files, :class:`UntrustedCodeError` for pickles nobody
    vouched for. An identical bento already stored is returned as it is."""
    if not hasattr(tarfile, "data_filter"):
        raise BentoArchiveError(
            "importing an archive needs tarfile's extraction filters: Python 3.10.12, 3.11.4 or later"
        )
    store = store or Store("bentos")
    trust = trust or TrustPolicy()
    try:
        compressed = archive.stat().st_size
        with archive.open("rb") as raw:
            stream = _Bounded(_decompressed(raw), MAX_MANIFEST_BYTES + 8 * _BLOCK)
            # typeshed wants an IO[bytes]; tarfile's stream mode only calls _Bounded.read
            with tarfile.open(fileobj=stream, mode="r|") as tar:  # type: ignore[call-overload]
                return _Import(tar, stream, compressed, store, trust).run()
    except (tarfile.TarError, EOFError, OSError, lzma.LZMAError, ValueError) as exc:
        raise BentoArchiveError(f"{archive}: not a readable bento archive ({exc})") from None


def _decompressed(raw: IO[bytes]) -> IO[bytes]:
    magic = raw.read(6)
    raw.seek(0)
    if magic.startswith(b"\x1f\x8b"):
        return cast(IO[bytes], gzip.GzipFile(fileobj=raw))
    if magic.startswith(b"BZh"):
        return bz2.BZ2File(raw)
    if magic.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(raw)
    return raw


class _Bounded:
    """A read-only stream that refuses to yield more than ``limit`` bytes (raised as the archive's fault)."""

    def __init__(self, stream: IO[bytes], limit: int) -> None:
        self.stream, self.limit, self.read_bytes = stream, limit, 0

    def read(self, size: int = -1) -> bytes:
        allowed = self.limit - self.read_bytes + 1
        data = self.stream.read(allowed if size < 0 else min(size, allowed))
        self.read_bytes += len(data)
        if self.read_bytes > self.limit:
            raise BentoArchiveError(
                f"the archive unpacks to more than its manifest declares (over {self.limit} bytes): refused"
            )
        return data


class _Import:
    """One import: the manifest member first, then every listed file, each checked before it is written."""

    def __init__(self, tar: tarfile.TarFile, stream: _Bounded, compressed: int, store: Store, trust: TrustPolicy):
        self.tar, self.stream, self.compressed, self.store, self.trust = tar, stream, compressed, store, trust

    def run(self) -> StoredItem:
        first = self.tar.next()
        if first is None or first.name != MANIFEST_NAME or not first.isreg() or first.size > MAX_MANIFEST_BYTES:
            raise BentoArchiveError(f"a bento archive starts with its {MANIFEST_NAME} (bentos export writes one)")
        text = self._read(first)
        try:
            document = json.loads(text)
            name = check_name(document["name"])
        except (ValueError, TypeError, KeyError, OverflowError, RecursionError):
            raise BentoArchiveError(f"the archive's {MANIFEST_NAME} is not a bento manifest") from None
        try:  # as the registry checks a publish: paths that every filesystem can hold at once, typed fields
            check_file_list(document.get("files"))
            manifest = BentoManifest.from_document(document)
        except InvalidManifest as exc:
            raise BentoArchiveError(f"the archive's {MANIFEST_NAME} is refused: {exc}") from None
        listed = {entry.path: entry.size for entry in manifest.files}
        self._bound(manifest.size + len(text), len(listed))
        existing = self.store.with_digest(name, manifest.digest)
        if existing is not None:
            return existing

        def fill(work: Path) -> None:
            (work / MANIFEST_NAME).write_bytes(text)
            self._extract_members(work, listed)
            try:
                verified = read_manifest(work)
            except BentoIntegrityError as exc:
                raise BentoArchiveError(f"the archive's files do not match its manifest: {exc}") from None
            check_trust(work, verified, self.trust)

        return self.store.add(name, fill)

    def _read(self, member: tarfile.TarInfo) -> bytes:
        extracted = self.tar.extractfile(member)
        assert extracted is not None
        return extracted.read()

    def _bound(self, declared: int, files: int) -> None:
        """Past the manifest, the stream may hold the declared bytes and their tar framing, no more."""
        if files > MAX_MEMBERS:
            raise BentoArchiveError(f"the archive lists {files} files: at most {MAX_MEMBERS}")
        if declared > max(EXPANSION_FLOOR, MAX_EXPANSION * self.compressed):
            raise BentoArchiveError(
                f"the archive would unpack to {declared} bytes from {self.compressed}: "
                f"over {MAX_EXPANSION} times its size, a decompression bomb"
            )
        free = shutil.disk_usage(self.store.root).free
        if declared > free:
            raise BentoArchiveError(f"the archive unpacks to {declared} bytes; {free} are free: nothing was written")
        self.stream.limit = self.stream.read_bytes + declared + (3 * files + 8) * _BLOCK + MAX_SIGNATURE_BYTES

    def _extract_members(self, work: Path, listed: dict[str, int]) -> None:
        seen: dict[str, str] = {}
        while (member := self.tar.next()) is not None:  # next(), not iter(): the manifest was read already
            self._check_member(member, work, listed, seen)
            if member.isdir():
                continue
            try:
                if member.name == SIGNATURE_NAME:
                    (work / SIGNATURE_NAME).write_bytes(self._read(member))
                else:
                    self.tar.extract(member, work, filter="data")
            except OSError as exc:
                raise BentoArchiveError(f"member {member.name!r} cannot be written: {exc.strerror or exc}") from None

    def _check_member(self, member: tarfile.TarInfo, work: Path, listed: dict[str, int], seen: dict[str, str]) -> None:
        if member.name == MANIFEST_NAME:
            raise BentoArchiveError(f"member {MANIFEST_NAME!r} appears twice: an archive holds one manifest, first")
        try:
            filtered = tarfile.data_filter(member, str(work))  # escaping paths, links out, devices (PEP 706)
        except tarfile.FilterError as exc:
            raise BentoArchiveError(f"member {member.name!r} refused: {exc}") from None
        if filtered.name != member.name:  # the filter makes an absolute path relative; we refuse it
            raise BentoArchiveError(f"member {member.name!r} is an absolute path: a bento's paths are relative")
        if member.name != SIGNATURE_NAME:
            try:  # a directory member too: no path the manifest could not list (2,000 levels, '.', '\\')
                check_file_path(member.name)
            except InvalidManifest as exc:
                raise BentoArchiveError(f"member {member.name[:80]!r} refused: {exc}") from None
        if member.isdir():
            return
        if not member.isreg() or member.issparse():
            kind = "a link" if member.issym() or member.islnk() else "not a plain file"
            raise BentoArchiveError(f"member {member.name!r} is {kind}: a bento holds plain files only")
        folded = folded_path(member.name)
        if folded in seen:
            clash = "appears twice" if seen[folded] == member.name else f"clashes with {seen[folded]!r} (case)"
            raise BentoArchiveError(f"member {member.name!r} {clash}: each file of a bento is one member")
        seen[folded] = member.name
        if member.name == SIGNATURE_NAME:
            if member.size > MAX_SIGNATURE_BYTES:
                raise BentoArchiveError(f"{SIGNATURE_NAME} is {member.size} bytes: a signature is at most 1 MiB")
            return
        if member.name not in listed:
            raise BentoArchiveError(f"member {member.name!r} is not one of the files the manifest lists")
        if member.size != listed[member.name]:
            raise BentoArchiveError(
                f"member {member.name!r} is {member.size} bytes; the manifest lists {listed[member.name]}"
            )
