"""The registry's schema under Alembic: which revision a database is at, and moving it to the newest.

A database made before Alembic (tables, no ``alembic_version``) is recognised as the baseline revision
``0001`` and upgraded from there; an empty one is created at the newest revision; any other is refused
until ``bento-jupyter registry upgrade`` (or ``registry serve --upgrade``) migrates it.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text

from bento_jupyter.registry.db.tables import WRITE, connect
from bento_jupyter.registry.errors import RegistryError

BASELINE = "0001"
_LOCK_KEY = 0x62656E746F  # PostgreSQL advisory lock: replicas starting together migrate one at a time


class SchemaOutdated(RegistryError):
    """The database's schema is not the one this release reads and writes."""

    status = 503
    code = "schema"


def _config(conn: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent))
    config.attributes["connection"] = conn
    return config


def head() -> str:
    """The newest revision this release knows."""
    script = ScriptDirectory(str(Path(__file__).parent))
    return script.get_current_head() or BASELINE


def revision(conn: Connection) -> str | None:
    """The database's revision; ``BASELINE`` for one made before Alembic, None when it is empty."""
    current = MigrationContext.configure(conn).get_current_revision()
    if current is None and inspect(conn).has_table("bentos"):
        return BASELINE
    return current


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Migrate to the newest revision in one transaction; returns (revision before, revision after)."""
    with engine.connect() as conn:
        conn.execution_options(**{WRITE: True})
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
            before = revision(conn)
            config = _config(conn)
            if before == BASELINE and MigrationContext.configure(conn).get_current_revision() is None:
                command.stamp(config, BASELINE)
            command.upgrade(config, "head")
            return before, head()


def ensure_current(engine: Engine, migrate: bool = False) -> None:
    """Create an empty database, migrate an old one when ``migrate``, or raise ``SchemaOutdated``."""
    with engine.connect() as conn:
        current = revision(conn)
    newest = head()
    if current == newest:
        return
    if current is None or migrate:
        upgrade(engine)
        return
    where = engine.url.render_as_string(hide_password=True)
    known = {script.revision for script in ScriptDirectory(str(Path(__file__).parent)).walk_revisions()}
    if current not in known:
        raise SchemaOutdated(
            f"{where} is at schema revision {current}, made by a newer bento_jupyter: upgrade bento_jupyter"
        )
    raise SchemaOutdated(
        f"{where} is at schema revision {current}, this release needs {newest}: back it up, then run "
        f"`bento-jupyter registry upgrade --db {where}` (or start the server with --upgrade)",
        current=current,
        head=newest,
    )


def open_database(url: str, migrate: bool = False) -> Engine:
    """An engine on ``url`` at the newest schema (see ``ensure_current``)."""
    engine = connect(url)
    ensure_current(engine, migrate)
    return engine
