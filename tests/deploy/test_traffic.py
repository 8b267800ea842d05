"""A bento's deadlines and concurrency limits travel to the BentoML and Ray Serve targets, run for real on 127.0.0.1."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
import yaml
from IPython.core.interactiveshell import InteractiveShell

from bento_jupyter.server.running import services
from tests.deploy.test_engines import BENTOML, RAY_DRIVER, RAY_PYTHON, deploy, running
from tests.integration.bento_process import free_port

pytestmark = pytest.mark.integration

IMPORTS = """
import time
from bento_jupyter import api
"""
# wait: its own 1 s deadline, 2 calls at once; hold: the server-wide 1.5 s deadline, 1 call at once.
CELL = """%%bento serve paced
@api(timeout=1.0, max_concurrency=2)
def wait(seconds: float) -> float:
    time.sleep(seconds)
    return seconds

@api(max_concurrency=1)
def hold(seconds: float) -> float:
    time.sleep(seconds)
    return seconds
"""


@pytest.fixture(scope="module")
def bento(tmp_path_factory) -> Path:
    """The bento of a service built with ``%config BentoMagics.request_timeout = 1.5``."""
    home = tmp_path_factory.mktemp("home")
    patch = pytest.MonkeyPatch()
    patch.setenv("BENTO_JUPYTER_HOME", str(home))
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "bento_jupyter")
    try:
        shell.run_line_magic("config", "BentoMagics.request_timeout = 1.5")
        shell.run_cell(IMPORTS)
        shell.run_cell(CELL, cell_id="cell-paced")
        url = services.get("paced").url
        for api in ("wait", "hold"):
            assert requests.post(f"{url}/{api}", json={"seconds": 0.01}, timeout=10).json() == 0.01
        shell.run_line_magic("bento", "build paced")
    finally:
        services.stop_all()
        shell.run_line_magic("config", "BentoMagics.request_timeout = None")
        patch.undo()
    return home / "bentos" / "paced" / "1"


def calls(url: str, api: str, seconds: list[float]) -> list[int]:
    """The statuses of concurrent calls to ``api`` sleeping ``seconds`` each."""
    with ThreadPoolExecutor(len(seconds)) as pool:
        answers = pool.map(lambda s: requests.post(f"{url}/{api}", json={"seconds": s}, timeout=30), seconds)
        return [answer.status_code for answer in answers]


@pytest.mark.timeout(300)
def test_bentoml_applies_the_service_timeout_and_max_concurrency(bento, tmp_path):
    if not BENTOML.exists():
        pytest.skip(".venv-bentoml is missing: run bash .ci/install")
    out = tmp_path / "bentoml"
    deploy(bento, "bentoml", out)
    source = (out / "paced" / "service.py").read_text()
    # one timeout and one max_concurrency per BentoML service: the longest deadline, the sum of the limits
    assert "@bentoml.service(name='paced', traffic={'timeout': 1.5, 'max_concurrency': 3}, threads=3)" in source
    assert "# Not exact in BentoML: BentoML has one timeout per service: 1.5 s for every API" in source
    assert "429 (no waiting room" in source
    port = free_port()
    command = [str(BENTOML), "serve", ".", "--host", "127.0.0.1", "--port", str(port)]
    with running(command, out / "paced", port, "/readyz", 180) as url:
        assert calls(url, "wait", [0.05]) == [200]
        assert calls(url, "hold", [3.0]) == [504]  # BentoML's timeout status
        assert sorted(calls(url, "wait", [1.0] * 4)) == [200, 200, 200, 429]  # 3 at once, the 4th refused


@pytest.mark.timeout(400)
def test_ray_serve_applies_each_api_timeout_and_max_concurrency(bento, tmp_path):
    if not RAY_PYTHON.exists():
        pytest.skip(".venv-ray is missing: run bash .ci/install")
    out = tmp_path / "ray"
    deploy(bento, "ray", out)
    config = yaml.safe_load((out / "serve_config.yaml").read_text())
    assert config["http_options"]["request_timeout_s"] == 1.5
    module = (out / "serve_paced.py").read_text()
    assert "max_ongoing_requests=2, max_queued_requests=32" in module
    assert "max_ongoing_requests=1, max_queued_requests=16" in module
    assert "timeouts={'/wait': 1.0, '/hold': 1.5}" in module
    assert "# Not exact in Ray Serve: Ray Serve answers a request past its timeout with 408" in module
    port = free_port()
    with running([str(RAY_PYTHON), "-c", RAY_DRIVER, str(port)], out, port, "/readyz", 300) as url:
        assert calls(url, "wait", [0.05]) == [200]
        assert calls(url, "wait", [3.0]) == [408]  # the API's own 1 s deadline, Ray's timeout status
        assert calls(url, "hold", [3.0]) == [408]  # the server-wide 1.5 s
        # two run at once (max_ongoing_requests=2): the third waits 0.7 s, then misses its 1 s deadline
        assert sorted(calls(url, "wait", [0.7] * 3)) == [200, 200, 408]
