"""Tokens: scoped, random, stored hashed; no default password; ``--open`` only on loopback."""

from __future__ import annotations

import hashlib
import subprocess

import pytest
import requests
from sqlalchemy import create_engine, text

from bento_jupyter.cli.main import main
from bento_jupyter.registry.client.remote import RegistryClient, push
from bento_jupyter.registry.errors import Forbidden, Unauthorized
from tests.registry.conftest import RegistryProcess, make_bento

pytestmark = pytest.mark.integration


def test_without_a_token_every_api_call_is_refused_with_a_json_401(sqlite_registry):
    for method, path in [("GET", "/bentos"), ("POST", "/blobs/missing"), ("PUT", "/blobs/" + "0" * 64)]:
        answer = requests.request(method, f"{sqlite_registry.url}/api/v1{path}", timeout=10)
        assert answer.status_code == 401, path
        assert answer.json()["code"] == "unauthorized"
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = requests.get(
        f"{sqlite_registry.url}/api/v1/bentos", headers={"Authorization": "Bearer bjr_x.y"}, timeout=10
    )
    assert wrong.status_code == 401
    assert requests.get(f"{sqlite_registry.url}/api/v1/health", timeout=10).json() == {"status": "ok", "auth": "token"}


def test_scopes_read_write_admin_each_allow_only_their_operations(sqlite_registry, local, name):
    make_bento(local, name)
    with pytest.raises(Forbidden, match="read scope"):
        push(name, sqlite_registry.url, sqlite_registry.tokens["read"], store=local)
    assert push(name, sqlite_registry.url, sqlite_registry.tokens["write"], store=local).version == 1
    assert RegistryClient(sqlite_registry.url, sqlite_registry.tokens["read"]).versions(name)[0].version == 1
    for scope in ("read", "write"):
        assert sqlite_registry.api("POST", "/tokens", scope, json={"scope": "admin"}).status_code == 403
    created = sqlite_registry.api("POST", "/tokens", "admin", json={"scope": "read", "name": "ci"})
    assert created.status_code == 201 and created.json()["scope"] == "read"


def test_tokens_are_random_256_bit_stored_only_as_sha256_and_revocable(sqlite_registry):
    created = sqlite_registry.api("POST", "/tokens", "admin", json={"scope": "write", "name": "laptop"}).json()
    secret = created["token"]
    assert len(secret.split(".", 1)[1]) >= 43  # token_urlsafe(32): 256 random bits
    engine = create_engine(sqlite_registry.db)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, hash FROM tokens")).all()
    engine.dispose()
    stored = dict(rows)
    assert stored[created["id"]] == hashlib.sha256(secret.encode()).hexdigest()
    assert all(secret not in value for value in stored.values())
    listed = sqlite_registry.api("GET", "/tokens", "admin").json()["tokens"]
    assert all("token" not in t and "hash" not in t for t in listed)
    client = RegistryClient(sqlite_registry.url, secret)
    client.json("GET", "/bentos")
    assert sqlite_registry.api("DELETE", f"/tokens/{created['id']}", "admin").status_code == 204
    with pytest.raises(Unauthorized):
        client.json("GET", "/bentos")


def test_token_create_cli_prints_a_working_admin_token(sqlite_registry):
    token = sqlite_registry.create_token_with_cli("admin")
    assert token.startswith("bjr_")
    answer = requests.get(
        f"{sqlite_registry.url}/api/v1/tokens", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert answer.status_code == 200


def test_open_is_refused_on_a_non_loopback_host(tmp_path, capsys):
    code = main(
        ["registry", "serve", "--open", "--host", "0.0.0.0", "--port", "0", "--db", f"sqlite:///{tmp_path / 'r.db'}"]
    )
    assert code == 2
    assert "only on a loopback host" in capsys.readouterr().err
    assert not (tmp_path / "r.db").exists()


def test_an_open_registry_on_loopback_needs_no_token(tmp_path, local, name):
    process = RegistryProcess(
        f"sqlite:///{tmp_path / 'r.db'}", f"file://{tmp_path / 'blobs'}", tmp_path / "home", open=True
    ).start()
    try:
        assert requests.get(f"{process.url}/api/v1/health", timeout=10).json()["auth"] == "open"
        make_bento(local, name)
        assert push(name, process.url, None, store=local).version == 1
        assert RegistryClient(process.url).history(name)[0].actor == "anonymous"
    finally:
        process.stop()


def test_the_module_entry_point_runs_the_commands(tmp_path):
    done = subprocess.run(
        [*RegistryProcess("", "", tmp_path).command("registry", "token", "create", "--scope", "read")],
        capture_output=True,
        text=True,
        env={**RegistryProcess("", "", tmp_path).env()},
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("bjr_") and (tmp_path / "registry" / "registry.db").exists()
