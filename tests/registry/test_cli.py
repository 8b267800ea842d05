"""The commands a user types: login, push, pull, alias, history, registry tag/search/versions."""

from __future__ import annotations

import argparse
import json
import stat

import pytest
import requests

from bento_jupyter.bento.local_store import Store
from bento_jupyter.cli.main import main
from bento_jupyter.cli.registry import add_commands
from bento_jupyter.registry.app.routes import OPERATIONS
from bento_jupyter.registry.client.remote import RegistryClient
from tests.registry.conftest import make_bento

pytestmark = pytest.mark.integration


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("BENTO_JUPYTER_HOME", str(tmp_path / "user"))
    for variable in ("BENTO_JUPYTER_REGISTRY_URL", "BENTO_JUPYTER_REGISTRY_TOKEN"):
        monkeypatch.delenv(variable, raising=False)
    return tmp_path / "user"


def run(capsys, *argv: str) -> str:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def test_login_saves_url_and_token_privately_and_refuses_a_bad_token(sqlite_registry, home, capsys):
    assert main(["login", sqlite_registry.url, "--token", "bjr_nope.nope"]) == 2
    assert "unknown or revoked token" in capsys.readouterr().err
    assert not (home / "config.json").exists()
    run(capsys, "login", sqlite_registry.url, "--token", sqlite_registry.tokens["write"])
    config = home / "config.json"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert json.loads(config.read_text())["registry"] == {
        "url": sqlite_registry.url,
        "token": sqlite_registry.tokens["write"],
    }


def test_push_pull_alias_and_history_commands_round_trip(sqlite_registry, home, capsys, name):
    run(capsys, "login", sqlite_registry.url, "--token", sqlite_registry.tokens["write"])
    store = Store("bentos")
    make_bento(store, name, handler="v = 1\n")
    make_bento(store, name, handler="v = 2\n")
    assert f"published {name}:1" in run(capsys, "push", f"{name}:1")
    assert f"published {name}:2" in run(capsys, "push", name)
    assert f"already published as {name}:2" in run(capsys, "push", f"{name}:2")
    assert "nothing -> 1" in run(capsys, "alias", name, "production", "1")
    assert "1 -> 2" in run(capsys, "alias", name, "production", "2")
    assert main(["alias", name, "production", "1", "--expect", "1"]) == 2
    assert "points at 2" in capsys.readouterr().err
    store.delete(f"{name}:1")
    out = run(capsys, "pull", f"{name}@production")
    assert "already in the local store" in out  # version 2 is still local
    store.delete(f"{name}:2")
    out = run(capsys, "pull", f"{name}:1")
    assert f"(registry version 1) pulled into the local store as {name}:" in out
    lines = run(capsys, "history", name).splitlines()
    assert [line.split("  ", 2)[2] for line in lines] == [
        "published version 1",
        "published version 2",
        "moved @production: - -> 1",
        "moved @production: 1 -> 2",
    ]
    assert all("test-write:" in line for line in lines)
    run(capsys, "registry", "tag", f"{name}:2", "golden")
    assert f"{name}:2" in run(capsys, "registry", "search", "--tag", "golden")
    assert "@production #golden" in run(capsys, "registry", "versions", name)


def test_history_names_each_deletion_and_untag_as_what_it_was(sqlite_registry, home, capsys, name):
    run(capsys, "login", sqlite_registry.url, "--token", sqlite_registry.tokens["write"])
    store = Store("bentos")
    for n in (1, 2, 3):
        make_bento(store, name, handler=f"v = {n}\n")
        run(capsys, "push", f"{name}:{n}")
    run(capsys, "registry", "tag", f"{name}:2", "golden")
    run(capsys, "registry", "tag", f"{name}:2", "golden", "--remove")
    RegistryClient(sqlite_registry.url, sqlite_registry.tokens["write"]).delete_version(name, 3)
    events = [line.split("  ", 2)[2] for line in run(capsys, "history", name).splitlines()]
    assert events[-3:] == ["tagged version 2 #golden", "untagged version 2 #golden", "deleted version 3"]
    assert not any("None" in event for event in events)


def test_add_commands_plugs_into_the_main_parser(sqlite_registry, home, capsys):
    parser = argparse.ArgumentParser(prog="bento-jupyter")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["registry", "token", "create", "--scope", "read"])
    assert args.run(args) == 0 and capsys.readouterr().out.startswith("bjr_")
    for argv in (["push", "x:1"], ["pull", "x@prod"], ["alias", "x", "prod", "3"], ["history", "x"], ["login", "u"]):
        assert callable(parser.parse_args(argv).run)
    serve = parser.parse_args(["registry", "serve"])
    assert (serve.host, serve.port, serve.open) == ("127.0.0.1", 8787, False)


def test_the_openapi_document_describes_every_operation(sqlite_registry):
    document = requests.get(f"{sqlite_registry.url}/api/v1/openapi.json", timeout=10).json()
    assert document["openapi"].startswith("3.")
    described = {(method.upper(), path) for path, ops in document["paths"].items() for method in ops}
    assert described == {(op.method, op.path) for op in OPERATIONS}
    publish = document["paths"]["/api/v1/bentos/{name}/versions"]["post"]
    assert publish["x-scope"] == "write" and publish["security"] == [{"bearer": []}]


@pytest.mark.parametrize(
    "command", [["registry", "serve", "--open", "--port", "0"], ["registry", "token", "create", "--scope", "read"]]
)
def test_a_plain_path_as_db_is_one_line_naming_the_sqlite_url(home, tmp_path, capsys, command):
    db = tmp_path / "file.db"
    assert main([*command, "--db", str(db)]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        f"bento-jupyter: error: invalid database URL {str(db)!r}: pass a URL such as sqlite:///{db} or postgresql://..."
    ]
    assert not db.exists()


def test_history_help_names_every_kind_of_change_the_history_shows(capsys):
    with pytest.raises(SystemExit):
        main(["history", "--help"])
    shown = " ".join(capsys.readouterr().out.split())  # argparse wraps the help
    for change in ("publishes", "alias moves", "rollbacks", "tags", "untags", "deletions", "policy", "verifications"):
        assert change in shown


def test_every_action_a_history_records_has_a_name_in_the_help():
    from bento_jupyter.registry.records import EVENTS, HISTORY_CHANGES

    assert set(HISTORY_CHANGES) == set(EVENTS)


@pytest.mark.parametrize("command", [["serve", "some-bento"], ["registry", "serve"]])
@pytest.mark.parametrize("port", ["70000", "-1", "65536", "http", "1.5"])
def test_every_port_option_refuses_a_non_port_in_one_line(home, capsys, command, port):
    with pytest.raises(SystemExit) as exited:
        main([*command, "--port", port])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].endswith(f"error: argument --port: a port is a number 0-65535, not '{port}'")
    assert "Traceback" not in err
