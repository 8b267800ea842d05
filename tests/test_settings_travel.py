"""Per-service settings chosen in the kernel travel with the bento: `bento-jupyter serve` applies and overrides them."""

from __future__ import annotations

import pytest
import requests
from IPython.core.interactiveshell import InteractiveShell

from bento_jupyter.bento.manifest import read_manifest
from bento_jupyter.server.running import services
from tests.deploy.test_engines import BENTOML, deploy, running
from tests.integration.bento_process import free_port, served_bento

pytestmark = pytest.mark.integration

CELL = """
import time

def describe(text: str) -> dict:
    return {"length": len(text)}

def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds
"""
ONE_MIB = "x" * (1024 * 1024)


@pytest.fixture
def shell(tmp_path, monkeypatch):
    monkeypatch.setenv("BENTO_JUPYTER_HOME", str(tmp_path))
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "bento_jupyter")
    yield ip
    ip.run_line_magic("config", "BentoMagics.max_body_mb = 32.0")
    ip.run_line_magic("config", "BentoMagics.request_timeout = None")
    services.stop_all()


def status(url: str, text: str) -> int:
    return requests.post(f"{url}/describe", json={"text": text}, timeout=30).status_code


def chunked_status(url: str, text: str) -> int:
    """The same request sent chunked: no Content-Length to refuse it by, so the server must count."""
    body = f'{{"text": "{text}"}}'.encode()
    chunks = (body[i : i + 65536] for i in range(0, len(body), 65536))
    headers = {"content-type": "application/json"}
    return requests.post(f"{url}/describe", data=chunks, headers=headers, timeout=30).status_code


def build_limited_bento(shell: InteractiveShell, home) -> str:
    """A bento built in the kernel with ``max_body_mb = 0.5``; its directory."""
    shell.run_line_magic("config", "BentoMagics.max_body_mb = 0.5")
    shell.run_cell(f"%%bento serve limits\n{CELL}", cell_id="cell-limits")
    shell.run_line_magic("bento", "build limits")
    return str(home / "bentos" / "limits" / "1")


def test_the_body_limit_set_in_the_kernel_is_recorded_applied_and_overridable(shell, tmp_path):
    shell.run_line_magic("config", "BentoMagics.max_body_mb = 0.5")
    shell.run_cell(f"%%bento serve limits\n{CELL}", cell_id="cell-limits")
    service = services.get("limits")
    assert service is not None
    assert status(service.url, ONE_MIB) == 413 and status(service.url, "small") == 200

    result = shell.run_line_magic("bento", "build limits")
    assert result is None or "limits:1" in str(result)
    root = tmp_path / "bentos" / "limits" / "1"
    assert read_manifest(root).document["settings"] == {"max_body_mb": 0.5, "request_timeout": None}

    with served_bento(str(root)) as url:  # as the kernel served it
        assert status(url, ONE_MIB) == 413 and status(url, "small") == 200
    with served_bento(str(root), "--max-body-mb", "2") as url:  # overridden on the command line
        assert status(url, ONE_MIB) == 200


def test_request_timeout_set_in_the_kernel_travels_and_serve_overrides_it(shell, tmp_path):
    shell.run_line_magic("config", "BentoMagics.request_timeout = 0.3")
    shell.run_cell(f"%%bento serve limits\n{CELL}", cell_id="cell-limits")
    service = services.get("limits")
    assert service is not None
    nap = requests.post(f"{service.url}/nap", json={"seconds": 2.0}, timeout=30)
    assert nap.status_code == 504 and "deadline" in nap.json()["error"]
    assert requests.post(f"{service.url}/nap", json={"seconds": 0.0}, timeout=30).status_code == 200
    shell.run_line_magic("bento", "build limits")
    root = tmp_path / "bentos" / "limits" / "1"
    assert read_manifest(root).document["settings"]["request_timeout"] == 0.3

    with served_bento(str(root)) as url:  # as the kernel served it
        assert requests.post(f"{url}/nap", json={"seconds": 2.0}, timeout=30).status_code == 504
    with served_bento(str(root), "--request-timeout", "5") as url:  # overridden on the command line
        assert requests.post(f"{url}/nap", json={"seconds": 1.0}, timeout=30).status_code == 200


@pytest.mark.timeout(300)
def test_the_bentoml_target_applies_the_body_limit_under_bentoml_serve(shell, tmp_path):
    if not BENTOML.exists():
        pytest.skip(".venv-bentoml is missing: run bash .ci/install")
    root = build_limited_bento(shell, tmp_path)
    out = tmp_path / "bentoml"
    deploy(root, "bentoml", out)
    port = free_port()
    command = [str(BENTOML), "serve", ".", "--host", "127.0.0.1", "--port", str(port)]
    with running(command, out / "limits", port, "/readyz", 180) as url:
        over = requests.post(f"{url}/describe", json={"text": ONE_MIB}, timeout=30)
        assert over.status_code == 413 and "exceeds" in over.json()["error"]
        assert chunked_status(url, ONE_MIB) == 413
        assert status(url, "small") == 200 and chunked_status(url, "x" * 300_000) == 200
