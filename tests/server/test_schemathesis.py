"""schemathesis generates requests from our /docs.json: no server error, every answer matches the document."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.generation import SCHEMATHESIS, SCHEMATHESIS_SEED
from tests.server.kinds_service import ALL

pytestmark = pytest.mark.integration


def test_generated_requests_get_documented_answers_from_every_kind_of_api(serve, tmp_path):
    url = serve("kinds", *ALL).url
    run = subprocess.run(
        [str(SCHEMATHESIS), "run", f"{url}/docs.json", "--checks", "all", "--max-examples", "25", *SCHEMATHESIS_SEED],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,  # its report directory
        check=False,
    )
    assert run.returncode == 0, run.stdout[-6000:]
    operations = re.search(r"Tested: (\d+)", run.stdout)
    cases = re.search(r"(\d+) generated, (\d+) passed", run.stdout)
    assert operations and int(operations.group(1)) >= len(ALL)  # every API (and the probes) was exercised
    assert cases and cases.group(1) == cases.group(2) and int(cases.group(1)) > 10 * len(ALL)
    print(f"schemathesis: {operations.group(1)} operations, {cases.group(1)} generated requests")
