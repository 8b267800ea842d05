"""``bento-jupyter serve`` bounds slow clients as the in-kernel server and the registry do: a thousand connections
that each send half a request head leave normal requests answering and are closed once ``--head-timeout`` passes;
beyond ``--max-connections`` open connections new requests get 503 until the stalled ones are closed. A request
body that stops arriving is closed by the same timeout."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from bento_jupyter.bento.manifest import write_manifest
from bento_jupyter.bento.manifest_model import BentoManifest
from tests.bento.hostile import API, SERVICE
from tests.integration.bento_process import served_bento
from tests.stalled_clients import SLOW_BODY, closed_by_the_server, stalled_connections

pytestmark = pytest.mark.integration
HEAD_TIMEOUT_S = 3


def plain_bento(root: Path) -> Path:
    (root / "src").mkdir(parents=True)
    (root / "src" / "service.py").write_text(SERVICE)
    write_manifest(
        root,
        BentoManifest.model_validate(
            {"kind": "bento", "name": "plain", "source": "src/service.py", "apis": [API], "models": []}
        ),
    )
    return root


def test_a_thousand_half_open_connections_do_not_stop_serve(tmp_path):
    root = plain_bento(tmp_path / "plain")
    with served_bento(str(root), "--head-timeout", str(HEAD_TIMEOUT_S)) as url:
        stalled = stalled_connections(url, 1000)
        try:
            for _ in range(10):
                answer = requests.post(f"{url}/predict", json={"x": [1, 2]}, timeout=10)
                assert answer.status_code == 200 and answer.json() == [1, 2]
            assert closed_by_the_server(stalled, HEAD_TIMEOUT_S + 10)
        finally:
            for sock in stalled:
                sock.close()


def test_beyond_max_connections_requests_get_503_until_the_stalled_ones_are_closed(tmp_path):
    root = plain_bento(tmp_path / "plain")
    with served_bento(str(root), "--head-timeout", str(HEAD_TIMEOUT_S), "--max-connections", "20") as url:
        stalled = stalled_connections(url, 25)
        try:
            assert requests.post(f"{url}/predict", json={"x": [1]}, timeout=10).status_code == 503
            assert closed_by_the_server(stalled, HEAD_TIMEOUT_S + 10)
            assert requests.post(f"{url}/predict", json={"x": [1]}, timeout=10).status_code == 200
        finally:
            for sock in stalled:
                sock.close()


def test_stalled_request_bodies_are_closed_after_the_head_timeout_and_free_their_connections(tmp_path):
    root = plain_bento(tmp_path / "plain")
    with served_bento(str(root), "--head-timeout", str(HEAD_TIMEOUT_S), "--max-connections", "100") as url:
        stalled = stalled_connections(url, 50, SLOW_BODY)
        try:
            for _ in range(5):  # below the limit, normal requests keep being answered
                assert requests.post(f"{url}/predict", json={"x": [1]}, timeout=10).status_code == 200
            stalled += stalled_connections(url, 100, SLOW_BODY)
            assert closed_by_the_server(stalled, HEAD_TIMEOUT_S + 10)
            assert requests.get(f"{url}/readyz", timeout=10).status_code == 200
            assert requests.post(f"{url}/predict", json={"x": [1]}, timeout=10).status_code == 200
        finally:
            for sock in stalled:
                sock.close()
