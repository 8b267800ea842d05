"""schemathesis generates requests from the registry's own OpenAPI document: no server error, every answer
conforms to the document (every check but positive data acceptance, see below). ``BENTO_REGISTRY_EXAMPLES``
sets the examples per operation (default 25; the issue's figures were taken with 200)."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from bento_jupyter.bento.store import Store
from bento_jupyter.registry.client import push
from tests.generation import SCHEMATHESIS, SCHEMATHESIS_SEED
from tests.registry.conftest import RegistryProcess, make_bento

pytestmark = pytest.mark.integration
EXAMPLES = int(os.environ.get("BENTO_REGISTRY_EXAMPLES", "25"))


def test_generated_requests_get_documented_answers_from_the_registry(tmp_path):
    registry = RegistryProcess(f"sqlite:///{tmp_path / 'r.db'}", f"file://{tmp_path / 'blobs'}", tmp_path / "home")
    registry.start()
    try:
        local = Store("bentos", tmp_path / "local")
        make_bento(local, "demo")
        push("demo", registry.url, registry.tokens["admin"], store=local)
        run = subprocess.run(
            [
                str(SCHEMATHESIS),
                "run",
                f"{registry.url}/api/v1/openapi.json",
                "--checks",
                "all",
                # A schema cannot say that a manifest's digest must match its content, that blobs must be
                # uploaded first, or that a tag needs an existing version: valid-looking data gets a 400/409.
                "--exclude-checks",
                "positive_data_acceptance",
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
    assert cases and cases.group(1) == cases.group(2)
    print(f"schemathesis: {cases.group(1)} generated requests, {EXAMPLES} examples per operation")
