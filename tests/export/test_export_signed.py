"""``export --sign-key``: every bundle signed before the export is published; the signature goes on into the
directories the deploy targets copy."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bento_jupyter.bento.signing import verify_bento
from tests.bento.test_signing import write_key_pair
from tests.integration.kernel_session import NOTEBOOKS

pytestmark = pytest.mark.integration
CLI = [sys.executable, "-m", "bento_jupyter.cli"]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=600)


def test_an_export_signed_on_the_way_out_verifies_and_so_do_its_deploy_copies(tmp_path, monkeypatch):
    monkeypatch.setenv("BENTO_JUPYTER_HOME", str(tmp_path / "home"))
    private, _ = write_key_pair(tmp_path, "ci")
    dist = tmp_path / "dist"
    done = _run("export", str(NOTEBOOKS / "quickstart.ipynb"), "-o", str(dist), "--sign-key", str(private))
    assert done.returncode == 0, done.stderr[-2000:]
    assert verify_bento(dist / "iris", tmp_path / "trusted").name == "ci"
    assert _run("deploy", str(dist), "--target", "ray", "-o", str(tmp_path / "ray")).returncode == 0
    assert verify_bento(tmp_path / "ray" / "bentos" / "iris", tmp_path / "trusted").name == "ci"


def test_an_unusable_sign_key_fails_the_export_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("BENTO_JUPYTER_HOME", str(tmp_path / "home"))
    (tmp_path / "not-a-key.pem").write_text("hello\n")
    dist = tmp_path / "dist"
    done = _run(
        "export", str(NOTEBOOKS / "quickstart.ipynb"), "-o", str(dist), "--sign-key", str(tmp_path / "not-a-key.pem")
    )
    assert done.returncode == 2 and "cannot sign with" in done.stderr
    assert not dist.exists()
