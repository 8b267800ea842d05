"""Registry tokens reach only the registry they were configured for: a real Jupyter server with the
sidebar's extension, a real registry, and a real loopback HTTP listener that records every request's headers."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bento_jupyter.cli.main import main
from bento_jupyter.registry.client.login import save_login
from tests.labserver.jupyter_process import API, JupyterServer, jupyter_server
from tests.registry.conftest import RegistryProcess

pytestmark = pytest.mark.integration

ENV_TOKEN = "bjr_env.secret-from-the-environment"
LOGIN_TOKEN = "bjr_login.secret-saved-by-login"


class Listener:
    """An HTTP server on 127.0.0.1 that answers like an empty registry and keeps every request's headers."""

    def __init__(self) -> None:
        seen = self.seen = []

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                seen.append(dict(self.headers))
                body = json.dumps({"bentos": [], "versions": []}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def tokens_received(self) -> list[str]:
        return [h["Authorization"] for h in self.seen if "Authorization" in h]


@pytest.fixture
def hostile() -> Iterator[Listener]:
    listener = Listener()
    listener.thread.start()
    try:
        yield listener
    finally:
        listener.server.shutdown()
        listener.server.server_close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, lab_registry: RegistryProcess) -> Iterator[JupyterServer]:
    """A Jupyter server whose environment holds a registry token, and whose user saved a login, both
    for ``lab_registry``."""
    base = tmp_path_factory.mktemp("token-scope")
    env = {"BENTO_JUPYTER_REGISTRY_URL": lab_registry.url, "BENTO_JUPYTER_REGISTRY_TOKEN": ENV_TOKEN}
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(jupyter_server(base, env=env))
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("BENTO_JUPYTER_HOME", str(server.home))
            save_login(lab_registry.url, LOGIN_TOKEN)
        yield server


def test_a_registry_url_in_request_headers_is_never_contacted(lab, hostile):
    lab.set_registry("")
    headers = {"X-Bento-Registry-Url": hostile.url, "X-Bento-Registry-Token": "whatever"}
    for method, path in [("GET", "bentos"), ("GET", "bentos/x"), ("POST", "push"), ("DELETE", "bentos/x/1")]:
        lab.api(method, f"{API}/{path}", headers=headers, json={"tag": "x:1"})
    assert hostile.seen == []


def test_the_settings_registry_is_used_even_when_a_request_names_another(lab, hostile, lab_registry):
    lab.set_registry(lab_registry.url, lab_registry.tokens["read"])
    answer = lab.api("GET", f"{API}/bentos", headers={"X-Bento-Registry-Url": hostile.url})
    assert answer.status_code == 200 and answer.json()["url"] == lab_registry.url
    assert hostile.seen == []


def test_a_hostile_url_in_the_settings_gets_neither_the_environment_nor_the_saved_token(lab, hostile):
    lab.set_registry(hostile.url)  # a wrong registryUrl, no registryToken
    assert lab.api("GET", f"{API}/bentos").status_code == 200
    assert len(hostile.seen) == 1 and hostile.tokens_received() == []


def test_the_environment_and_saved_tokens_go_to_their_own_registry(lab, lab_registry):
    lab.set_registry(lab_registry.url)  # no token in the settings: the environment's, which is for this URL
    answer = lab.api("GET", f"{API}/bentos")
    assert answer.status_code == 401 and "unknown or revoked token" in answer.json()["error"]  # ENV_TOKEN was sent


def test_the_cli_sends_no_configured_token_to_another_url(hostile, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BENTO_JUPYTER_HOME", str(tmp_path))
    monkeypatch.setenv("BENTO_JUPYTER_REGISTRY_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("BENTO_JUPYTER_REGISTRY_TOKEN", ENV_TOKEN)
    save_login("http://127.0.0.1:9", LOGIN_TOKEN)
    assert main(["registry", "versions", "x", "--url", hostile.url]) == 0
    assert len(hostile.seen) == 1 and hostile.tokens_received() == []
    assert (
        main(["registry", "versions", "x", "--url", hostile.url, "--token", "bjr_explicit.t"]) == 0
    )  # the user's choice
    assert hostile.tokens_received() == ["Bearer bjr_explicit.t"]
