"""Bentos, versions, aliases, tags and history in SQL: every change is one transaction."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Connection, Engine, and_, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from bento_jupyter.bento.manifest_model import BentoManifest, GitLineage, Lineage
from bento_jupyter.bento.trust import code_executing_files
from bento_jupyter.refs import check_label, check_name, check_version
from bento_jupyter.registry.db.tables import (
    WRITE,
    aliases,
    bentos,
    history,
    row_record,
    signatures,
    tags,
    verifications,
    version_cells,
    versions,
)
from bento_jupyter.registry.errors import Conflict, NotFound
from bento_jupyter.registry.records import (
    AliasMove,
    BentoInfo,
    BentoSummary,
    Deletion,
    HistoryEntry,
    HistoryEvent,
    SignedBy,
    VersionDetail,
    VersionLineage,
    VersionSummary,
)

_SUMMARY_COLUMNS = [
    versions.c.id,
    versions.c.bento,
    versions.c.number,
    versions.c.digest,
    versions.c.size,
    versions.c.file_count,
    versions.c.notebook_path,
    versions.c.kernel_id,
    versions.c.git_commit,
    versions.c.git_branch,
    versions.c.created_at,
    versions.c.created_by,
]


def stored_json(value: Any) -> str:
    """JSON text for a TEXT column: ASCII-escaped, so a NUL inside a string is ``\\u0000`` (PostgreSQL text
    cannot hold NUL); ``json.loads`` gives back the same value."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _text(value: Any, limit: int) -> str | None:
    """A lineage value as column text: at most ``limit`` characters, no NUL (PostgreSQL text holds none)."""
    return str(value).replace("\x00", "")[:limit] if value is not None else None


def _lineage_columns(lineage: Lineage) -> dict[str, Any]:
    git = lineage.git or GitLineage()
    return {
        "notebook_path": _text(lineage.notebook_path, 4096),
        "kernel_id": _text(lineage.kernel_id, 128),
        "git_commit": _text(git.commit, 64),
        "git_branch": _text(git.branch, 1024),
    }


def _cells(lineage: Lineage) -> list[dict[str, Any]]:
    return [
        {
            "position": position,
            "cell_id": _text(cell.cell_id, 128) if cell.cell_id else None,
            "source_sha256": _text(cell.source_sha256, 64) if cell.source_sha256 else None,
        }
        for position, cell in enumerate(lineage.cells)
    ]


Observer = Callable[[Connection, HistoryEvent], None]


def _event(row: Any) -> HistoryEvent:
    return row_record(HistoryEvent, row, details=json.loads(row.details) if row.details else None)


class MetadataStore:
    """The registry's metadata on one SQLAlchemy engine (SQLite or PostgreSQL).

    ``observers`` are called with each history event inside the transaction that records it, so what
    they write (webhook deliveries) commits or rolls back with the change itself.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.observers: list[Observer] = []

    @contextmanager
    def transaction(self, write: bool = False) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            conn.execution_options(**{WRITE: write})
            with conn.begin():
                yield conn

    def _insert_ignoring_duplicate(self, conn: Connection, table: Any, values: dict[str, Any]) -> None:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        conn.execute(dialect.insert(table).values(**values).on_conflict_do_nothing())

    # -- publishing -------------------------------------------------------------------------------

    def publish(
        self, name: str, manifest: BentoManifest, actor: str, signature: dict[str, Any] | None = None
    ) -> tuple[VersionSummary, bool]:
        """Record a new version of ``name`` (number = previous + 1), or return the one with this digest.

        ``signature`` (bundle, key_fingerprint, verified) is stored with it; a re-publish can add one to a version
        that had none."""
        check_name(name)
        digest = manifest.digest
        stamp = now()
        with self.transaction(write=True) as conn:
            self._insert_ignoring_duplicate(conn, bentos, {"name": name, "latest": 0, "created_at": stamp})
            # Lock the bento's row: concurrent publishes of one name queue here (PostgreSQL row lock;
            # SQLite already holds the database's write lock), so numbers are distinct and gap-free.
            latest = conn.execute(select(bentos.c.latest).where(bentos.c.name == name).with_for_update()).scalar_one()
            existing = conn.execute(
                select(*_SUMMARY_COLUMNS).where(versions.c.bento == name, versions.c.digest == digest)
            ).first()
            if existing is not None:
                if signature is not None:
                    self._insert_ignoring_duplicate(conn, signatures, {"version_id": existing.id, **signature})
                return self._summaries(conn, [existing])[0], False
            number = latest + 1
            conn.execute(update(bentos).where(bentos.c.name == name).values(latest=number))
            version_id = conn.execute(
                insert(versions)
                .values(
                    bento=name,
                    number=number,
                    digest=digest,
                    manifest=stored_json(manifest.document),
                    size=manifest.size,
                    file_count=len(manifest.files),
                    created_at=stamp,
                    created_by=actor,
                    **_lineage_columns(manifest.lineage),
                )
                .returning(versions.c.id)
            ).scalar_one()
            if signature is not None:
                conn.execute(insert(signatures).values(version_id=version_id, **signature))
            cells = _cells(manifest.lineage)
            if cells:
                conn.execute(insert(version_cells), [{"version_id": version_id, **cell} for cell in cells])
            self._record(conn, name, "publish", None, None, number, actor, stamp)
            row = conn.execute(select(*_SUMMARY_COLUMNS).where(versions.c.id == version_id)).one()
            return self._summaries(conn, [row])[0], True

    def _record(
        self,
        conn: Connection,
        name: str,
        action: str,
        label: str | None,
        old: int | None,
        new: int | None,
        actor: str,
        stamp: str,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> HistoryEvent:
        row = conn.execute(
            insert(history)
            .values(
                bento=name,
                action=action,
                label=label,
                from_version=old,
                to_version=new,
                actor=actor,
                at=stamp,
                reason=reason,
                details=json.dumps(details) if details else None,
            )
            .returning(*history.c)
        ).one()
        event = _event(row)
        for observer in self.observers:
            observer(conn, event)
        return event

    # -- reading ----------------------------------------------------------------------------------

    def _summaries(self, conn: Connection, rows: list[Any]) -> list[VersionSummary]:
        ids = [row.id for row in rows]
        tags_of: dict[int, list[str]] = {i: [] for i in ids}
        aliases_of: dict[tuple[str, int], list[str]] = {}
        executing: dict[int, list[str]] = {}
        signed_by: dict[int, SignedBy] = {}
        if ids:
            for version_id, text in conn.execute(
                select(versions.c.id, versions.c.manifest).where(versions.c.id.in_(ids))
            ):
                executing[version_id] = code_executing_files(BentoManifest.from_document(json.loads(text)))
            for version_id, fingerprint, verified in conn.execute(
                select(signatures.c.version_id, signatures.c.key_fingerprint, signatures.c.verified).where(
                    signatures.c.version_id.in_(ids)
                )
            ):
                signed_by[version_id] = SignedBy(key=fingerprint, verified=bool(verified))
            for version_id, tag in conn.execute(
                select(tags.c.version_id, tags.c.tag).where(tags.c.version_id.in_(ids)).order_by(tags.c.tag)
            ):
                tags_of[version_id].append(tag)
            names = {row.bento for row in rows}
            for bento, alias, number in conn.execute(
                select(aliases.c.bento, aliases.c.alias, aliases.c.version)
                .where(aliases.c.bento.in_(names))
                .order_by(aliases.c.alias)
            ):
                aliases_of.setdefault((bento, number), []).append(alias)
        return [
            VersionSummary(
                name=row.bento,
                version=row.number,
                digest=row.digest,
                size=row.size,
                file_count=row.file_count,
                created_at=row.created_at,
                created_by=row.created_by,
                lineage=VersionLineage(
                    notebook_path=row.notebook_path,
                    kernel_id=row.kernel_id,
                    git_commit=row.git_commit,
                    git_branch=row.git_branch,
                ),
                tags=tags_of[row.id],
                aliases=aliases_of.get((row.bento, row.number), []),
                code_executing_files=executing.get(row.id, []),  # what a pull needs --trust-code for
                signed_by=signed_by.get(row.id),
            )
            for row in rows
        ]

    def _require_bento(self, conn: Connection, name: str) -> None:
        if conn.execute(select(bentos.c.name).where(bentos.c.name == check_name(name))).scalar() is None:
            raise NotFound(f"no bento named {name!r} in this registry")

    def _latest(self, conn: Connection, name: str) -> int:
        """The highest version still present (numbers of deleted versions are never given out again)."""
        self._require_bento(conn, name)
        latest = conn.execute(select(func.max(versions.c.number)).where(versions.c.bento == name)).scalar()
        if latest is None:
            raise NotFound(f"{name} has no versions left in this registry")
        return latest

    def _version_row(self, conn: Connection, name: str, number: int | None) -> Any:
        if number is None:
            number = self._latest(conn, name)
        else:
            self._require_bento(conn, name)
            number = check_version(number)
        row = conn.execute(
            select(*_SUMMARY_COLUMNS, versions.c.manifest).where(versions.c.bento == name, versions.c.number == number)
        ).first()
        if row is None:
            raise NotFound(f"{name}:{number} is not in this registry")
        return row

    def list_bentos(self) -> list[BentoSummary]:
        """Every bento with versions: its latest version, how many it has, and its aliases."""
        with self.transaction() as conn:
            rows = conn.execute(
                select(bentos.c.name, func.max(versions.c.number), func.count(versions.c.id), bentos.c.created_at)
                .join(versions, versions.c.bento == bentos.c.name)
                .group_by(bentos.c.name, bentos.c.created_at)
                .order_by(bentos.c.name)
            ).all()
            aliases_of: dict[str, dict[str, int]] = {}
            for bento, alias, number in conn.execute(
                select(aliases.c.bento, aliases.c.alias, aliases.c.version).order_by(aliases.c.alias)
            ):
                aliases_of.setdefault(bento, {})[alias] = number
            return [
                BentoSummary(name=n, latest=last, versions=count, created_at=at, aliases=aliases_of.get(n, {}))
                for n, last, count, at in rows
            ]

    def get_bento(self, name: str) -> BentoInfo:
        with self.transaction() as conn:
            latest = self._latest(conn, name)
            created = conn.execute(select(bentos.c.created_at).where(bentos.c.name == name)).scalar_one()
            rows = conn.execute(select(aliases.c.alias, aliases.c.version).where(aliases.c.bento == name))
            return BentoInfo(name=name, latest=latest, created_at=created, aliases=dict(sorted(rows.tuples())))

    def list_versions(self, name: str) -> list[VersionSummary]:
        with self.transaction() as conn:
            self._require_bento(conn, name)
            rows = conn.execute(select(*_SUMMARY_COLUMNS).where(versions.c.bento == name).order_by(versions.c.number))
            return self._summaries(conn, list(rows))

    def get_version(self, name: str, number: int | None = None) -> VersionDetail:
        """One version with its manifest; ``number=None`` is the latest."""
        with self.transaction() as conn:
            row = self._version_row(conn, name, number)
            bundle = conn.execute(select(signatures.c.bundle).where(signatures.c.version_id == row.id)).scalar()
            summary = self._summaries(conn, [row])[0]
            return VersionDetail(
                **dict(summary),
                manifest=BentoManifest.from_document(json.loads(row.manifest)),
                signature=json.loads(bundle) if bundle else None,
            )

    # -- aliases and tags -------------------------------------------------------------------------

    def list_aliases(self, name: str) -> dict[str, int]:
        with self.transaction() as conn:
            self._require_bento(conn, name)
            rows = conn.execute(select(aliases.c.alias, aliases.c.version).where(aliases.c.bento == name))
            return dict(sorted(rows.tuples()))

    def get_alias(self, name: str, alias: str) -> int:
        with self.transaction() as conn:
            self._require_bento(conn, name)
            number = conn.execute(
                select(aliases.c.version).where(aliases.c.bento == name, aliases.c.alias == check_label(alias))
            ).scalar()
            if number is None:
                raise NotFound(f"{name} has no alias {alias!r}")
            return number

    def move_alias(
        self,
        name: str,
        alias: str,
        number: int,
        expected: int | None,
        actor: str,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> AliasMove:
        """Point ``alias`` at ``number`` only if it now points at ``expected`` (None: it must not exist)."""
        check_label(alias)
        check_version(number)
        with self.transaction(write=True) as conn:
            return self._move(conn, name, alias, number, expected, actor, "alias", reason, details)

    def _move(
        self,
        conn: Connection,
        name: str,
        alias: str,
        number: int,
        expected: int | None,
        actor: str,
        action: str,
        reason: str | None,
        details: dict[str, Any] | None,
    ) -> AliasMove:
        stamp = now()
        self._version_row(conn, name, number)
        values = {"version": number, "updated_at": stamp, "updated_by": actor}
        if expected is None:
            try:
                with conn.begin_nested():
                    conn.execute(insert(aliases).values(bento=name, alias=alias, **values))
            except IntegrityError:
                raise self._lost_race(conn, name, alias, expected) from None
        else:
            moved = conn.execute(
                update(aliases)
                .where(aliases.c.bento == name, aliases.c.alias == alias, aliases.c.version == expected)
                .values(**values)
            )
            if moved.rowcount != 1:
                raise self._lost_race(conn, name, alias, expected)
        event = self._record(conn, name, action, alias, expected, number, actor, stamp, reason, details)
        return AliasMove(name=name, alias=alias, version=number, previous=expected, history_id=event.id)

    def rollback(
        self, name: str, alias: str, actor: str, reason: str | None = None, expected: int | None = None
    ) -> AliasMove:
        """Move ``alias`` back to the target it had before its last move that is not yet rolled back.

        Each alias move pushes a target, each rollback pops one, so repeated rollbacks walk further back.
        ``expected`` (optional) is the version the caller believes the alias points at now.
        """
        check_label(alias)
        with self.transaction(write=True) as conn:
            self._require_bento(conn, name)
            current = conn.execute(
                select(aliases.c.version).where(aliases.c.bento == name, aliases.c.alias == alias)
            ).scalar()
            if current is None:
                raise NotFound(f"{name} has no alias {alias!r}")
            if expected is not None and expected != current:
                raise Conflict(f"{name}@{alias} points at {current}, not {expected}: reload and retry", current=current)
            stack: list[tuple[int, int]] = []  # (history id, target)
            for row in conn.execute(
                select(history.c.id, history.c.action, history.c.to_version)
                .where(history.c.bento == name, history.c.label == alias, history.c.action.in_(("alias", "rollback")))
                .order_by(history.c.id)
            ):
                if row.action == "alias":
                    stack.append((row.id, row.to_version))
                elif stack:
                    stack.pop()
            if len(stack) < 2 or stack[-1][1] != current:
                raise Conflict(f"{name}@{alias} has no earlier target to roll back to (it points at {current})")
            undone, target = stack[-1][0], stack[-2][1]
            exists = conn.execute(
                select(versions.c.id).where(versions.c.bento == name, versions.c.number == target)
            ).scalar()
            if exists is None:
                raise Conflict(f"{name}@{alias} would roll back to {name}:{target}, which has been deleted")
            details = {"undoes": undone}
            return self._move(conn, name, alias, target, current, actor, "rollback", reason, details)

    def _lost_race(self, conn: Connection, name: str, alias: str, expected: int | None) -> Conflict:
        current = conn.execute(
            select(aliases.c.version).where(aliases.c.bento == name, aliases.c.alias == alias)
        ).scalar()
        return Conflict(
            f"{name}@{alias} points at {current if current is not None else 'nothing'}, "
            f"not {expected if expected is not None else 'nothing'}: reload and retry",
            current=current,
        )

    def set_tag(self, name: str, number: int, tag: str, present: bool, actor: str) -> VersionSummary:
        check_label(tag, "tag")
        stamp = now()
        with self.transaction(write=True) as conn:
            row = self._version_row(conn, name, number)
            exists = conn.execute(
                select(func.count()).select_from(tags).where(tags.c.version_id == row.id, tags.c.tag == tag)
            ).scalar_one()
            if present and not exists:
                self._insert_ignoring_duplicate(conn, tags, {"version_id": row.id, "tag": tag})
                self._record(conn, name, "tag", tag, None, number, actor, stamp)
            elif not present and exists:
                conn.execute(tags.delete().where(tags.c.version_id == row.id, tags.c.tag == tag))
                self._record(conn, name, "untag", tag, number, None, actor, stamp)
            return self._summaries(conn, [row])[0]

    # -- deleting ---------------------------------------------------------------------------------

    def delete_version(self, name: str, number: int, actor: str) -> Deletion:
        """Remove one version (its tags and cell index too); refused while an alias points at it.

        Its number is never given out again, and its blobs stay: other versions may share them.
        """
        stamp = now()
        with self.transaction(write=True) as conn:
            row = self._version_row(conn, name, check_version(number))
            held = sorted(
                conn.execute(
                    select(aliases.c.alias).where(aliases.c.bento == name, aliases.c.version == number)
                ).scalars()
            )
            if held:
                raise Conflict(
                    f"{name}:{number} is the target of {', '.join(f'{name}@{a}' for a in held)}: move the alias first",
                    aliases=held,
                )
            conn.execute(tags.delete().where(tags.c.version_id == row.id))
            conn.execute(signatures.delete().where(signatures.c.version_id == row.id))
            conn.execute(verifications.delete().where(verifications.c.version_id == row.id))
            conn.execute(version_cells.delete().where(version_cells.c.version_id == row.id))
            conn.execute(versions.delete().where(versions.c.id == row.id))
            self._record(conn, name, "delete", None, number, None, actor, stamp)
        return Deletion(name=name, version=number, deleted=True)

    # -- history and lineage ----------------------------------------------------------------------

    def history(self, name: str, alias: str | None = None) -> list[HistoryEntry]:
        """A bento's history, oldest first; with ``alias``, only that alias's moves, rollbacks and policies."""
        query = select(history).where(history.c.bento == name)
        if alias is not None:
            query = query.where(
                history.c.label == check_label(alias), history.c.action.in_(("alias", "rollback", "policy"))
            )
        with self.transaction() as conn:
            self._require_bento(conn, name)
            return [HistoryEntry(**dict(_event(row))) for row in conn.execute(query.order_by(history.c.id))]

    def search(
        self,
        notebook: str | None = None,
        cell: str | None = None,
        commit: str | None = None,
        tag: str | None = None,
        name: str | None = None,
    ) -> list[VersionSummary]:
        """Versions built from notebook X, cell Y (id or source sha256), git commit Z (or a prefix), or tagged T."""
        query = select(*_SUMMARY_COLUMNS)
        conditions = []
        if name:
            conditions.append(versions.c.bento == check_name(name))
        if notebook:
            conditions.append(versions.c.notebook_path == notebook)
        if commit:
            conditions.append(versions.c.git_commit.startswith(commit.lower(), autoescape=True))
        if cell:
            matching = select(version_cells.c.version_id).where(
                or_(version_cells.c.cell_id == cell, version_cells.c.source_sha256 == cell)
            )
            conditions.append(versions.c.id.in_(matching))
        if tag:
            conditions.append(versions.c.id.in_(select(tags.c.version_id).where(tags.c.tag == tag)))
        if conditions:
            query = query.where(and_(*conditions))
        with self.transaction() as conn:
            rows = conn.execute(query.order_by(versions.c.bento, versions.c.number).limit(1000))
            return self._summaries(conn, list(rows))
