"""The services of a kernel: re-running a serving cell never loses the healthy service it replaces."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from bento_jupyter import api
from bento_jupyter.errors import ServerStartError
from bento_jupyter.server.running import ServiceTable
from bento_jupyter.service.definition import ServiceDefinition


def greet(name: str) -> str:
    return f"hello {name}"


@api(name="greet")
def greet_v2(name: str) -> str:
    return f"hi {name}"


@pytest.fixture
def table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServiceTable]:
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path))
    table = ServiceTable()
    yield table
    table.stop_all()


def definition(func) -> ServiceDefinition:
    return ServiceDefinition.from_functions("greeter", [func])


def answer(url: str) -> str:
    return requests.post(f"{url}/greet", json={"name": "ann"}, timeout=5).text


def test_moving_to_a_taken_port_fails_and_leaves_the_running_service_untouched(table):
    running = table.serve(definition(greet), cell_id="cell-1")
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    held.listen()
    taken = held.getsockname()[1]
    try:
        with pytest.raises(ServerStartError, match=f"port {taken}"):
            table.serve(definition(greet), cell_id="cell-1", port=taken)
    finally:
        held.close()
    assert table.get("greeter") is running and running.running
    assert answer(running.url) == "hello ann"


def test_moving_to_a_free_port_starts_there_then_stops_the_old_one(table):
    old = table.serve(definition(greet), cell_id="cell-1")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    new = table.serve(definition(greet_v2), cell_id="cell-1", port=free)
    assert new.server.port == free and answer(new.url) == "hi ann"
    assert not old.running
    with pytest.raises(requests.ConnectionError):
        answer(old.url)


def test_a_renamed_service_may_keep_its_port(table):
    old = table.serve(ServiceDefinition.from_functions("first", [greet]), cell_id="cell-1")
    port = old.server.port
    new = table.serve(ServiceDefinition.from_functions("second", [greet]), cell_id="cell-1", port=port)
    assert new.server.port == port and answer(new.url) == "hello ann"
    assert table.get("first") is None and not old.running
