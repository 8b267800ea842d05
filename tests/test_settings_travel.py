"""Per-service settings chosen in the kernel travel with the bento: `bento-jupyter serve` applies and overrides them."""

from __future__ import annotations

import pytest
import requests
from IPython.core.interactiveshell import InteractiveShell

from bento_jupyter.bento.manifest import read_manifest
from bento_jupyter.server.services import services
from tests.integration.bento_process import served_bento

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


def test_the_body_limit_set_in_the_kernel_is_recorded_applied_and_overridable(shell, tmp_path):
    shell.run_line_magic("config", "BentoMagics.max_body_mb = 0.5")
    shell.run_cell(f"%%bento serve limits\n{CELL}", cell_id="cell-limits")
    service = services.get("limits")
    assert service is not None
    assert status(service.url, ONE_MIB) == 413 and status(service.url, "small") == 200

    result = shell.run_line_magic("bento", "build limits")
    assert result is None or "limits:1" in str(result)
    root = tmp_path / "bentos" / "limits" / "1"
    assert read_manifest(root)["settings"] == {"max_body_mb": 0.5, "request_timeout": None}

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
    assert read_manifest(root)["settings"]["request_timeout"] == 0.3

    with served_bento(str(root)) as url:  # as the kernel served it
        assert requests.post(f"{url}/nap", json={"seconds": 2.0}, timeout=30).status_code == 504
    with served_bento(str(root), "--request-timeout", "5") as url:  # overridden on the command line
        assert requests.post(f"{url}/nap", json={"seconds": 1.0}, timeout=30).status_code == 200
