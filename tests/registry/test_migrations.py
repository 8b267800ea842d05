"""Alembic migrations: a database made by the pre-Alembic release upgrades without losing a row."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, select, text
from sqlalchemy.exc import DBAPIError

from bento_jupyter.registry.db.migrations import BASELINE, SchemaOutdated, head, open_database, revision
from bento_jupyter.registry.db.tables import connect, metadata
from tests.registry.conftest import RegistryProcess, _postgres_bindir, create_database

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).parent / "fixtures"
V0_TABLES = ["bentos", "versions", "version_cells", "aliases", "tags", "history", "tokens"]
CLI = [sys.executable, "-m", "bento_jupyter.cli"]


def snapshot(url: str, like: dict[str, list[dict]] | None = None) -> dict[str, list[dict]]:
    """Every row of every pre-Alembic table, in primary-key order (only ``like``'s columns when given)."""
    engine = connect(url)
    reflected = MetaData()
    reflected.reflect(engine, only=V0_TABLES)
    with engine.connect() as conn:
        rows = {
            name: [
                {k: v for k, v in row._mapping.items() if like is None or not like[name] or k in like[name][0]}
                for row in conn.execute(select(table).order_by(*table.primary_key.columns))
            ]
            for name, table in reflected.tables.items()
        }
    engine.dispose()
    return rows


def sqlite_v0(tmp_path: Path) -> str:
    path = tmp_path / "registry.db"
    shutil.copyfile(FIXTURES / "registry-v0.sqlite", path)
    return f"sqlite:///{path}"


def postgres_v0(server_url: str, database: str) -> str:
    url = create_database(server_url, database)
    host_port = server_url.rsplit("@", 1)[1]
    host, port = host_port.split(":")
    psql = [_postgres_bindir() / "psql", "-h", host, "-p", port, "-U", "postgres", "-d", database, "-q"]
    subprocess.run(
        [*psql, "-v", "ON_ERROR_STOP=1", "-f", FIXTURES / "registry-v0.pg.sql"],
        check=True,
        capture_output=True,
    )
    return url


@pytest.fixture(params=["sqlite", "postgres"])
def v0_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return sqlite_v0(tmp_path)
    return postgres_v0(request.getfixturevalue("postgres_url"), f"v0_{tmp_path.name[-20:].lower()}")


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120)


def test_upgrading_a_pre_alembic_database_keeps_every_row(v0_url):
    before = snapshot(v0_url)
    assert sum(map(len, before.values())) > 30 and before["history"]
    with pytest.raises(SchemaOutdated, match="registry upgrade"):
        open_database(v0_url)
    done = cli("registry", "upgrade", "--db", v0_url)
    assert done.returncode == 0, done.stderr
    assert f"from schema revision {BASELINE} to {head()}" in done.stdout
    assert snapshot(v0_url, before) == before
    again = cli("registry", "upgrade", "--db", v0_url)
    assert f"already at schema revision {head()}" in again.stdout
    engine = open_database(v0_url)
    with engine.connect() as conn:
        assert revision(conn) == head()
        conn.rollback()
        with pytest.raises(DBAPIError, match="append-only"), conn.begin():
            conn.execute(text("DELETE FROM history"))
    engine.dispose()


def test_the_server_refuses_an_old_schema_and_migrates_it_with_upgrade(v0_url, tmp_path):
    refused = RegistryProcess(v0_url, f"file://{tmp_path / 'blobs'}", tmp_path / "home")
    with pytest.raises(RuntimeError, match="registry upgrade"):
        refused.start()
    before = snapshot(v0_url)
    served = RegistryProcess(v0_url, f"file://{tmp_path / 'blobs'}", tmp_path / "home", extra=["--upgrade"]).start()
    try:
        after = snapshot(v0_url, before)
        assert all(row in after["tokens"] for row in before["tokens"])  # start() added its own tokens
        assert {k: v for k, v in after.items() if k != "tokens"} == {k: v for k, v in before.items() if k != "tokens"}
        history = served.api("GET", "/bentos/iris/history", "read").json()["history"]
        stored = [r for r in before["history"] if r["bento"] == "iris"]
        assert [(e["action"], e["label"], e["from"], e["to"], e["actor"], e["at"]) for e in history] == [
            (r["action"], r["label"], r["from_version"], r["to_version"], r["actor"], r["at"]) for r in stored
        ]
        assert served.api("GET", "/bentos/iris/aliases", "read").json()["aliases"] == {"production": 3, "staging": 4}
        assert served.api("GET", "/bentos/sentiment/versions/1", "read").status_code == 404  # deleted in v0
        rolled = served.api("POST", "/bentos/iris/aliases/production/rollback", json={"reason": "after the upgrade"})
        assert (rolled.json()["previous"], rolled.json()["version"]) == (3, 2)  # walks the history v0 recorded
        assert requests.get(f"{served.url}/api/v1/bentos", timeout=10).status_code == 401
    finally:
        served.stop()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_new_database_made_by_the_migrations_matches_the_tables_the_code_uses(backend, request, tmp_path):
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'fresh.db'}"
    else:
        url = create_database(request.getfixturevalue("postgres_url"), f"fresh_{tmp_path.name[-20:].lower()}")
    engine = open_database(url)
    with engine.connect() as conn:
        assert revision(conn) == head()
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    engine.dispose()
