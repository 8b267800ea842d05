"""``%bento push NAME --oci URI`` and ``%bento pull oci://...`` against a real Docker Distribution."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from bento_jupyter.bento.local_store import Store

pytestmark = pytest.mark.integration


def test_push_and_pull_through_the_magics(open_registry, built, tmp_path, monkeypatch, capsys):
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "bento_jupyter")
    monkeypatch.setenv("BENTO_JUPYTER_HOME", str(built.root.parent))
    shell.run_line_magic("bento", f"push demo:2 --oci {open_registry.url('team/magic', '2')}")
    pushed = capsys.readouterr().out
    assert f"pushed demo:2 to {open_registry.url('team/magic', '2')}@sha256:" in pushed
    monkeypatch.setenv("BENTO_JUPYTER_HOME", str(tmp_path / "home"))
    shell.run_line_magic("bento", f"pull {open_registry.url('team/magic', '2')}")
    assert "as demo:1" in capsys.readouterr().out
    assert Store("bentos").manifest("demo:1").digest == built.manifest("demo:2").digest
    with pytest.raises(UsageError, match="404"):
        shell.run_line_magic("bento", f"pull {open_registry.url('team/magic', 'missing')}")
