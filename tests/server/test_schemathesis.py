"""schemathesis generates requests from our /docs.json: no server error, every answer matches the document."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from bento_jupyter.service.codecs import TensorCodec
from bento_jupyter.service.definition import ServiceDefinition
from tests.generation import SCHEMATHESIS, SCHEMATHESIS_SEED
from tests.server.kinds_service import ALL

pytestmark = pytest.mark.integration


def ragged_routes(definition: ServiceDefinition) -> list[str]:
    """Routes taking a tensor whose schema allows ragged lists: no declared shape, or an inner size left free."""

    def may_be_ragged(codec: object) -> bool:
        return isinstance(codec, TensorCodec) and (codec.spec.shape is None or -1 in codec.spec.shape[1:])

    return [route for route, m in definition.apis.items() if any(may_be_ragged(p.codec) for p in m.params)]


def test_generated_requests_get_documented_answers_from_every_kind_of_api(serve, tmp_path):
    server = serve("kinds", *ALL)
    url = server.url
    # Every check, except one where it cannot hold: a tensor's lists at one depth must share a length, which
    # JSON Schema cannot say unless a declared shape fixes the sizes (its description does), so a schema-valid
    # ragged list is refused with 400 by design. Those tensors still get every other check, at every documented
    # depth; tensors of declared shape get them all. (A check named on the command line would override the file.)
    (tmp_path / "schemathesis.toml").write_text(
        "[checks]\nenabled = true\n\n[[operations]]\n"
        f"include-path = {json.dumps(ragged_routes(server.app.definition))}\n"
        "checks.positive_data_acceptance.enabled = false\n"
    )
    run = subprocess.run(
        [str(SCHEMATHESIS), "run", f"{url}/docs.json", "--max-examples", "25", *SCHEMATHESIS_SEED],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,  # its report directory and its schemathesis.toml
        check=False,
    )
    assert run.returncode == 0, run.stdout[-6000:]
    operations = re.search(r"Tested: (\d+)", run.stdout)
    cases = re.search(r"(\d+) generated, (\d+) passed", run.stdout)
    assert operations and int(operations.group(1)) >= len(ALL)  # every API (and the probes) was exercised
    assert cases and cases.group(1) == cases.group(2) and int(cases.group(1)) > 10 * len(ALL)
    print(f"schemathesis: {operations.group(1)} operations, {cases.group(1)} generated requests")
