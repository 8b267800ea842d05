"""The registry's tables and how to open its database (SQLite in WAL mode, or PostgreSQL)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import (
    DDL,
    BigInteger,
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

# Append-only: rows are inserted in the transaction that makes the change, never updated or deleted.
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
    Index("ix_history_bento", "bento"),
)

_APPEND_ONLY = {
    "sqlite": [
        f"CREATE TRIGGER history_no_{verb.lower()} BEFORE {verb} ON history "
        "BEGIN SELECT RAISE(ABORT, 'the history is append-only'); END"
        for verb in ("UPDATE", "DELETE")
    ],
    "postgresql": [
        "CREATE FUNCTION history_append_only() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'the history is append-only'; END $$",
        "CREATE TRIGGER history_append_only BEFORE UPDATE OR DELETE ON history "
        "FOR EACH ROW EXECUTE FUNCTION history_append_only()",
    ],
}
for _dialect, _statements in _APPEND_ONLY.items():
    for _statement in _statements:
        event.listen(history, "after_create", DDL(_statement).execute_if(dialect=_dialect))

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
    """``postgres://`` and ``postgresql://`` use psycopg 3; anything but SQLite or PostgreSQL is refused."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    parsed = make_url(url)
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


def open_database(url: str) -> Engine:
    """An engine on ``url`` with the registry's tables created if they are missing."""
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
    metadata.create_all(engine)
    return engine
