"""A tensor's declared Shape and DType travel to the BentoML target, where BentoML's own validators enforce them."""

from __future__ import annotations

import pytest
import requests
from IPython.core.interactiveshell import InteractiveShell

from bento_jupyter.server.running import services
from tests.deploy.test_engines import BENTOML, deploy, running
from tests.integration.bento_process import free_port

pytestmark = pytest.mark.integration

IMPORTS = """
from typing import Annotated
import numpy as np
from bento_jupyter import DType, Shape as Dims
"""
CELL = """%%bento serve declared
def scale(x: Annotated[np.ndarray, Dims((-1, 3)), DType("float32")]) -> np.ndarray:
    return x * 2
"""


@pytest.mark.timeout(300)
def test_bentoml_serve_enforces_the_declared_shape_and_dtype(tmp_path, monkeypatch):
    if not BENTOML.exists():
        pytest.skip(".venv-bentoml is missing: run bash .ci/install")
    monkeypatch.setenv("BENTO_JUPYTER_HOME", str(tmp_path))
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "bento_jupyter")
    try:
        shell.run_cell(IMPORTS)
        shell.run_cell(CELL, cell_id="cell-declared")
        url = services.get("declared").url
        assert requests.post(f"{url}/scale", json={"x": [[1, 2, 3]]}, timeout=10).json() == [[2.0, 4.0, 6.0]]
        shell.run_line_magic("bento", "build declared")
    finally:
        services.stop_all()
    out = tmp_path / "bentoml"
    deploy(tmp_path / "bentos" / "declared" / "1", "bentoml", out)
    assert "from bentoml.validators import DType, Shape as Dims" in (out / "declared" / "service.py").read_text()
    port = free_port()
    command = [str(BENTOML), "serve", ".", "--host", "127.0.0.1", "--port", str(port)]
    with running(command, out / "declared", port, "/readyz", 180) as url:
        answer = requests.post(f"{url}/scale", json={"x": [[1, 2, 3]]}, timeout=30)
        assert answer.status_code == 200 and answer.json() == [[2.0, 4.0, 6.0]]  # float32 in, floats out
        assert requests.post(f"{url}/scale", json={"x": [[1, 2]]}, timeout=30).status_code == 400
