"""schemathesis generates requests from the registry's own OpenAPI document and runs every check against a real
registry, on SQLite and on PostgreSQL: no server error, every answer conforms to the document, schema-valid data
is accepted and schema-invalid data refused. ``schemathesis.toml`` beside this file says which answer counts as
acceptance for the two content-addressed operations (a 422: the bytes hash to another digest, which no schema
can state). ``BENTO_REGISTRY_EXAMPLES`` sets the examples per operation (default 25; the issue's figures were
taken with 200)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from bento_jupyter.bento.local_store import Store
from bento_jupyter.registry.client.remote import push
from tests.generation import SCHEMATHESIS, SCHEMATHESIS_SEED
from tests.registry.conftest import RegistryProcess, create_database, make_bento

pytestmark = pytest.mark.integration
EXAMPLES = int(os.environ.get("BENTO_REGISTRY_EXAMPLES", "25"))
CONFIG = Path(__file__).with_name("schemathesis.toml")


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_generated_requests_get_documented_answers_from_the_registry(database, request, tmp_path):
    if database == "postgres":
        db = create_database(request.getfixturevalue("postgres_url"), f"schemathesis_{os.getpid()}")
    else:
        db = f"sqlite:///{tmp_path / 'r.db'}"
    registry = RegistryProcess(db, f"file://{tmp_path / 'blobs'}", tmp_path / "home")
    registry.start()
    try:
        local = Store("bentos", tmp_path / "local")
        make_bento(local, "demo")
        push("demo", registry.url, registry.tokens["admin"], store=local)
        run = subprocess.run(
            [
                str(SCHEMATHESIS),
                "--config-file",
                str(CONFIG),
                "run",
                f"{registry.url}/api/v1/openapi.json",
                "--checks",
                "all",
                "--max-examples",
                str(EXAMPLES),
                *SCHEMATHESIS_SEED,
                "--header",
                f"Authorization: Bearer {registry.tokens['admin']}",
            ],
            capture_output=True,
            text=True,
            timeout=1800,
            cwd=tmp_path,
            check=False,
        )
    finally:
        registry.stop()
    assert run.returncode == 0, run.stdout[-8000:]
    cases = re.search(r"(\d+) generated, (\d+) passed", run.stdout)
    operations = re.search(r"Tested: (\d+)", run.stdout)
    assert cases and cases.group(1) == cases.group(2) and operations
    print(
        f"schemathesis on {database}: {operations.group(1)} operations x {EXAMPLES} examples, "
        f"{cases.group(1)} generated requests, all checks passed"
    )
