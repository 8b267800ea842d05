"""``%bento push`` / ``%bento pull`` from a notebook shell against a real registry process."""

from __future__ import annotations

import pytest
from IPython.core.interactiveshell import InteractiveShell

from bento_jupyter.bento.local_store import Store
from bento_jupyter.bento.manifest import read_manifest
from tests.registry.conftest import make_bento

pytestmark = pytest.mark.integration


def test_push_then_pull_through_the_magics(sqlite_registry, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BENTO_JUPYTER_HOME", str(tmp_path / "user"))
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "bento_jupyter")
    item = make_bento(Store("bentos"), "magic-demo")
    digest = read_manifest(item.path).digest
    credentials = f"--url {sqlite_registry.url} --token {sqlite_registry.tokens['write']}"

    shell.run_line_magic("bento", f"push magic-demo:{item.version} {credentials}")
    first = capsys.readouterr().out
    assert "published magic-demo:1" in first
    shell.run_line_magic("bento", f"push magic-demo {credentials}")
    assert "already published as magic-demo:1" in capsys.readouterr().out

    Store("bentos").delete(item.tag)
    shell.run_line_magic("bento", f"pull magic-demo:1 {credentials}")
    assert "pulled magic-demo:1 (registry version 1)" in capsys.readouterr().out
    pulled = Store("bentos").resolve("magic-demo:latest")
    assert read_manifest(pulled.path).digest == digest
