"""Garbage collection: delete blobs no version references (left behind by deleted versions).

A push uploads blobs first and publishes the manifest that references them last, and it skips blobs the
registry already has. So a blob is kept, even unreferenced, while it is younger than the grace period
(an upload whose publish has not come yet) or was named by an upload check or a publish within it (a
push about to reference a blob it did not upload: ``mark``). Dry run unless ``delete``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from sqlalchemy import Connection, Engine, select
from sqlalchemy.dialects import postgresql, sqlite

from bento_jupyter.bento.manifest_model import BentoManifest
from bento_jupyter.registry.db.metadata import now
from bento_jupyter.registry.db.tables import blob_marks, versions
from bento_jupyter.registry.storage.base import BlobStore, StoredBlob

DEFAULT_GRACE = timedelta(hours=24)


@dataclass
class GcReport:
    """What a collection found: unreferenced blobs (deleted unless a dry run) and the ones it kept."""

    dry_run: bool
    unreferenced: list[StoredBlob] = field(default_factory=list)
    referenced: int = 0
    kept_recent: int = 0

    @property
    def bytes(self) -> int:
        return sum(blob.size for blob in self.unreferenced)

    def summary(self) -> str:
        verb = "would delete" if self.dry_run else "deleted"
        mib = self.bytes / (1 << 20)
        return (
            f"{verb} {len(self.unreferenced)} blobs, {self.bytes} bytes ({mib:.1f} MiB); "
            f"kept {self.referenced} referenced and {self.kept_recent} within the grace period"
        )


def mark(engine: Engine, digests: Iterable[str]) -> None:
    """Record that ``digests`` were just named by a push (upserts; SQLite and PostgreSQL)."""
    rows = [{"sha256": d, "marked_at": now()} for d in sorted(set(digests))]
    if not rows:
        return
    with engine.begin() as conn:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(blob_marks).values(rows)
        conn.execute(statement.on_conflict_do_update(index_elements=["sha256"], set_={"marked_at": now()}))


def _referenced(conn: Connection) -> set[str]:
    digests: set[str] = set()
    for manifest in conn.execute(select(versions.c.manifest)).scalars():
        digests.update(entry.sha256 for entry in BentoManifest.from_document(json.loads(manifest)).files)
    return digests


def _marked_since(conn: Connection, cutoff: str) -> set[str]:
    return set(conn.execute(select(blob_marks.c.sha256).where(blob_marks.c.marked_at >= cutoff)).scalars())


def collect(engine: Engine, blobs: BlobStore, grace: timedelta = DEFAULT_GRACE, delete: bool = False) -> GcReport:
    """Find (and with ``delete``, remove) unreferenced blobs older than ``grace`` and not marked within it."""
    started = datetime.now(timezone.utc)
    cutoff = started - grace
    cutoff_text = cutoff.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    listed = list(blobs.list())  # listed before the references are read: a blob published later is listed too late
    report = GcReport(dry_run=not delete)
    with engine.connect() as conn:
        referenced = _referenced(conn)
        marked = _marked_since(conn, cutoff_text)
    for blob in listed:
        if blob.sha256 in referenced:
            report.referenced += 1
        elif blob.modified >= cutoff or blob.sha256 in marked:
            report.kept_recent += 1
        else:
            report.unreferenced.append(blob)
    if delete and report.unreferenced:
        with engine.connect() as conn:  # a push may have named one since: read the marks again, then delete
            marked = _marked_since(conn, cutoff_text)
        kept = [blob for blob in report.unreferenced if blob.sha256 in marked]
        report.kept_recent += len(kept)
        report.unreferenced = [blob for blob in report.unreferenced if blob.sha256 not in marked]
        for blob in report.unreferenced:
            blobs.delete(blob.sha256)
        with engine.begin() as conn:
            conn.execute(blob_marks.delete().where(blob_marks.c.marked_at < cutoff_text))
    return report
