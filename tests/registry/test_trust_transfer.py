"""A version that executes code on load is marked as such by the registry and pulled only with --trust-code."""

from __future__ import annotations

import pytest

from bento_jupyter.bento.local_store import Store
from bento_jupyter.cli.main import main
from bento_jupyter.registry.client.remote import RegistryClient, push
from tests.bento.hostile import pickle_bento
from tests.registry.conftest import make_bento

pytestmark = pytest.mark.integration


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("BENTO_JUPYTER_HOME", str(tmp_path / "user"))
    for variable in ("BENTO_JUPYTER_REGISTRY_URL", "BENTO_JUPYTER_REGISTRY_TOKEN"):
        monkeypatch.delenv(variable, raising=False)
    return tmp_path / "user"


def test_listing_names_the_code_executing_files_and_pull_needs_trust_code(
    sqlite_registry, home, tmp_path, capsys, name
):
    marker = tmp_path / "pwned"
    source = Store("bentos", tmp_path / "builder")
    source.add(name, lambda root: pickle_bento(root, marker, name=name))
    make_bento(source, name)  # version 2: plain files only
    for tag in (f"{name}:1", f"{name}:2"):
        push(tag, sqlite_registry.url, sqlite_registry.tokens["write"], store=source)
    versions = RegistryClient(sqlite_registry.url, sqlite_registry.tokens["read"]).versions(name)
    assert [v.code_executing_files for v in versions] == [["models/m.pkl"], []]

    remote = ["--url", sqlite_registry.url, "--token", sqlite_registry.tokens["read"]]
    assert main(["registry", "versions", name, *remote]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "executes-code-on-load" in lines[0] and "executes-code-on-load" not in lines[1]

    assert main(["pull", f"{name}:1", *remote]) == 2
    error = capsys.readouterr().err
    assert "models/m.pkl" in error and "--trust-code" in error
    assert Store("bentos").list(name) == [] and not (home / "cache" / "blobs" / "sha256").exists()
    assert main(["pull", f"{name}:2", *remote]) == 0  # nothing executes: no decision needed
    assert main(["pull", f"{name}:1", "--trust-code", *remote]) == 0
    assert [item.version for item in Store("bentos").list(name)] == [1, 2]
    assert not marker.exists()  # pulling never loads


def test_pull_with_require_signature_accepts_a_pickle_signed_by_a_trusted_key_only(
    sqlite_registry, home, tmp_path, capsys, name
):
    from bento_jupyter.bento.signing import sign_bento
    from tests.bento.test_signing import write_key_pair

    source = Store("bentos", tmp_path / "builder")
    source.add(name, lambda root: pickle_bento(root, tmp_path / "pwned", name=name))
    make_bento(source, name)  # version 2: unsigned, plain files only
    private, _ = write_key_pair(tmp_path, "builder")
    sign_bento(source.resolve(f"{name}:1").path, private)
    for tag in (f"{name}:1", f"{name}:2"):
        push(tag, sqlite_registry.url, sqlite_registry.tokens["write"], store=source)
    (tmp_path / "other").mkdir()
    write_key_pair(tmp_path / "other", "stranger")
    remote = ["--url", sqlite_registry.url, "--token", sqlite_registry.tokens["read"]]

    assert main(["pull", f"{name}:1", *remote]) == 2
    assert "--trust-code" in capsys.readouterr().err
    assert main(["pull", f"{name}:1", "--require-signature", str(tmp_path / "other" / "trusted"), *remote]) == 2
    assert "not one of the 1 trusted keys" in capsys.readouterr().err
    assert main(["pull", f"{name}:2", "--require-signature", str(tmp_path / "trusted"), *remote]) == 2
    assert "is not signed" in capsys.readouterr().err  # required means required, pickle or not
    assert Store("bentos").list(name) == []
    assert main(["pull", f"{name}:1", "--require-signature", str(tmp_path / "trusted"), *remote]) == 0
    assert "signed by" in capsys.readouterr().err
    assert [item.version for item in Store("bentos").list(name)] == [1] and not (tmp_path / "pwned").exists()
