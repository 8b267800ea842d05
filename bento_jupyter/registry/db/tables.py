"""The registry's tables and how to open its database (SQLite in WAL mode, or PostgreSQL)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Engine,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    make_url,
)
from sqlalchemy.exc import ArgumentError

from bento_jupyter.registry.errors import InvalidRequest

metadata = MetaData()

bentos = Table(
    "bentos",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("latest", Integer, nullable=False),  # the last number given out (deleted numbers stay used)
    Column("created_at", String(32), nullable=False),
)

versions = Table(
    "versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("bento", String(64), ForeignKey("bentos.name"), nullable=False),
    Column("number", Integer, nullable=False),
    Column("digest", String(71), nullable=False),
    Column("manifest", Text, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("file_count", Integer, nullable=False),
    Column("notebook_path", Text),
    Column("kernel_id", String(128)),
    Column("git_commit", String(64)),
    Column("git_branch", Text),
    Column("created_at", String(32), nullable=False),
    Column("created_by", String(128), nullable=False),
    UniqueConstraint("bento", "number"),
    UniqueConstraint("bento", "digest"),
    Index("ix_versions_notebook_path", "notebook_path"),
    Index("ix_versions_git_commit", "git_commit"),
)

version_cells = Table(
    "version_cells",
    metadata,
    Column("version_id", Integer, ForeignKey("versions.id"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("cell_id", String(128)),
    Column("source_sha256", String(64)),
    Index("ix_version_cells_cell_id", "cell_id"),
    Index("ix_version_cells_source_sha256", "source_sha256"),
)

aliases = Table(
    "aliases",
    metadata,
    Column("bento", String(64), ForeignKey("bentos.name"), primary_key=True),
    Column("alias", String(64), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("updated_at", String(32), nullable=False),
    Column("updated_by", String(128), nullable=False),
)

tags = Table(
    "tags",
    metadata,
    Column("version_id", Integer, ForeignKey("versions.id"), primary_key=True),
    Column("tag", String(64), primary_key=True),
    Index("ix_tags_tag", "tag"),
)

# Append-only: rows are inserted in the transaction that makes the change, never updated or deleted
# (a trigger made by migration 0001 refuses UPDATE and DELETE).
history = Table(
    "history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("bento", String(64), nullable=False),
    Column("action", String(16), nullable=False),  # publish | alias | tag | untag | delete
    Column("label", String(64)),  # the alias or tag
    Column("from_version", Integer),
    Column("to_version", Integer),
    Column("actor", String(128), nullable=False),
    Column("at", String(32), nullable=False),
    Column("reason", Text),  # why, as the actor said (--reason)
    Column("details", Text),  # JSON: a rollback's target, a forced promotion's compatibility report
    Index("ix_history_bento", "bento"),
)

# What an alias needs before it may move: a comma list of "verified", "compatible".
alias_policies = Table(
    "alias_policies",
    metadata,
    Column("bento", String(64), ForeignKey("bentos.name"), primary_key=True),
    Column("alias", String(64), primary_key=True),
    Column("requires", String(64), nullable=False),
    Column("updated_at", String(32), nullable=False),
    Column("updated_by", String(128), nullable=False),
)

# Results of replaying a version's recorded samples, posted by a client or a CI job.
verifications = Table(
    "verifications",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("version_id", Integer, ForeignKey("versions.id"), nullable=False),
    Column("passed", Boolean, nullable=False),
    Column("report", Text, nullable=False),  # JSON, as posted
    Column("actor", String(128), nullable=False),
    Column("at", String(32), nullable=False),
    Index("ix_verifications_version_id", "version_id"),
)

signatures = Table(
    "signatures",
    metadata,
    Column("version_id", Integer, ForeignKey("versions.id"), primary_key=True),
    Column("bundle", Text, nullable=False),  # bento.sig, a Sigstore bundle, as the client sent it
    Column("key_fingerprint", String(64), nullable=False),  # the key it names (sha256 of its PEM)
    Column("verified", Boolean, nullable=False),  # checked against the registry's trusted keys on publish
)

webhooks = Table(
    "webhooks",
    metadata,
    Column("id", String(16), primary_key=True),
    Column("url", Text, nullable=False),
    Column("secret", String(128), nullable=False),  # the HMAC key; needed to sign, so stored as given
    Column("events", String(256), nullable=False),  # comma list, or "*"
    Column("created_at", String(32), nullable=False),
    Column("created_by", String(128), nullable=False),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("hook_id", String(16), nullable=False),
    Column("event", String(32), nullable=False),
    Column("payload", Text, nullable=False),  # the exact bytes signed and sent
    Column("status", String(16), nullable=False),  # pending | delivered | failed
    Column("attempts", Integer, nullable=False),
    Column("response_status", Integer),
    Column("error", Text),
    Column("created_at", String(32), nullable=False),
    Column("updated_at", String(32), nullable=False),
    Index("ix_webhook_deliveries_hook_id", "hook_id"),
    Index("ix_webhook_deliveries_status", "status"),
)

# When a blob was last named by an upload check or a publish: GC leaves recently marked blobs alone.
blob_marks = Table(
    "blob_marks",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("marked_at", String(32), nullable=False),
)

tokens = Table(
    "tokens",
    metadata,
    Column("id", String(16), primary_key=True),
    Column("hash", String(64), nullable=False, unique=True),  # sha256 of the secret; the secret is never stored
    Column("scope", String(8), nullable=False),
    Column("name", String(64), nullable=False),
    Column("created_at", String(32), nullable=False),
    Column("revoked_at", String(32)),
)

WRITE = "registry_write"  # execution option: this transaction writes (SQLite takes the write lock up front)


def normalize_url(url: str) -> str:
    """``postgres://`` and ``postgresql://`` use psycopg 3; anything but SQLite or PostgreSQL (a plain path
    included) is refused with :class:`InvalidRequest`."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise InvalidRequest(
            f"invalid database URL {url!r}: pass a URL such as sqlite:///{Path(url).absolute()} or postgresql://..."
        ) from None
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise InvalidRequest(f"unsupported database {url!r}: use sqlite:///PATH or postgresql://...")
    return url


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(conn: Connection) -> None:
        # A deferred transaction that reads, then writes, can fail at once with "database is locked"
        # when another writer got in between; taking the write lock first makes writers queue instead.
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(WRITE) else "BEGIN")


def connect(url: str) -> Engine:
    """An engine on ``url``, configured for the registry; ``migrations.open_database`` checks its schema."""
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        _configure_sqlite(engine)
    else:
        try:
            engine = create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)
        except ModuleNotFoundError as exc:
            raise InvalidRequest(f"PostgreSQL needs its driver ({exc.name}): pip install 'psycopg[binary]'") from None
    return engine


R = TypeVar("R", bound=BaseModel)


def row_record(record: type[R], row: Any, **fields: Any) -> R:
    """``record`` from a result row whose columns bear its field names (other columns are ignored); ``fields`` add
    or replace values: a column named otherwise, JSON text decoded."""
    return record.model_validate({**row._mapping, **fields})
