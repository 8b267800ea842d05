"""The services of a kernel: re-running a serving cell never loses the healthy service it replaces."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bento_jupyter import api
from bento_jupyter.errors import ServerStartError
from bento_jupyter.server.running import ServiceTable
from bento_jupyter.service.definition import ServiceDefinition
from tests.server.overload_helpers import metric, wait_for


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


def waiting_api(gate: threading.Event, slots: int):
    """A plain API of ``slots`` slots whose calls wait on ``gate``; it answers which handler ran."""

    @api(name="slow", max_concurrency=slots)
    def slow(i: int) -> dict:
        gate.wait(20)
        return {"handler": "old", "i": i}

    return slow


@api(name="slow", max_concurrency=8)
def slow_v2(i: int) -> dict:
    return {"handler": "new", "i": i}


@api(name="other")
def other() -> int:
    return 2


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(slots=st.integers(1, 2), waiting=st.integers(1, 3), rerun=st.sampled_from(["changed", "removed"]))
def test_requests_waiting_for_a_plain_api_slot_finish_on_the_old_handlers_across_a_hot_swap(
    table, slots, waiting, rerun
):
    gate = threading.Event()
    old = table.serve(ServiceDefinition.from_functions("swapper", [waiting_api(gate, slots)]), cell_id="cell-1")
    total = slots + waiting
    with ThreadPoolExecutor(total) as pool:
        calls = [pool.submit(requests.post, f"{old.url}/slow", json={"i": i}, timeout=20) for i in range(total)]
        wait_for(lambda: metric(old.url, "bentoml_service_request_in_progress") == total)  # `waiting` wait for a slot
        after = [slow_v2] if rerun == "changed" else [other]  # max_concurrency changed, or the API removed
        new = table.serve(ServiceDefinition.from_functions("swapper", after), cell_id="cell-1")
        assert new is old  # the same port, hot-swapped
        gate.set()
        answers = [call.result() for call in calls]
    assert [(a.status_code, a.json()) for a in answers] == [(200, {"handler": "old", "i": i}) for i in range(total)]
    if rerun == "changed":
        assert requests.post(f"{old.url}/slow", json={"i": 9}, timeout=5).json() == {"handler": "new", "i": 9}
    table.stop_all()


def test_stopping_a_service_with_a_hung_call_answers_it_503_and_logs_no_traceback(table):
    gate = threading.Event()
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    loggers = [logging.getLogger("uvicorn.error"), logging.getLogger("asyncio")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        service = table.serve(ServiceDefinition.from_functions("hung", [waiting_api(gate, 1)]), cell_id="cell-1")
        with ThreadPoolExecutor(2) as pool:
            calls = [pool.submit(requests.post, f"{service.url}/slow", json={"i": i}, timeout=30) for i in range(2)]
            wait_for(lambda: metric(service.url, "bentoml_service_request_in_progress") == 2)
            table.stop("hung")  # past uvicorn's grace period the running call and the waiting one are cancelled
            assert [call.result().status_code for call in calls] == [503, 503]
    finally:
        gate.set()
        for logger in loggers:
            logger.removeHandler(handler)
    assert [r.getMessage() for r in records if r.exc_info] == []


def at(host: str, port: int) -> str:
    """The URL a client uses to reach ``host``:``port`` (a wildcard address through another loopback address)."""
    return f"http://{'127.0.0.9' if host == '0.0.0.0' else host}:{port}"


HOSTS = ["127.0.0.1", "127.0.0.2", "0.0.0.0"]  # loopback addresses of this machine, and the wildcard


@pytest.mark.parametrize(("before", "after"), [(a, b) for a in HOSTS for b in HOSTS if a != b])
def test_rerunning_with_another_host_moves_the_service_there_on_the_same_port(table, before, after):
    old = table.serve(definition(greet), cell_id="cell-1", host=before)
    port = old.server.port
    new = table.serve(definition(greet_v2), cell_id="cell-1", host=after)  # no --port: the port stays
    assert (new.server.host, new.server.port) == (after, port) and table.get("greeter") is new
    assert answer(at(after, port)) == "hi ann"
    assert not old.running
    if before != "0.0.0.0" and after != "0.0.0.0":
        with pytest.raises(requests.ConnectionError):
            answer(at(before, port))


@pytest.mark.parametrize(("before", "after"), [("127.0.0.1", "127.0.0.2"), ("127.0.0.1", "0.0.0.0")])
def test_moving_to_a_host_whose_port_is_taken_fails_and_the_old_service_serves_on(table, before, after):
    old = table.serve(definition(greet), cell_id="cell-1", host=before)
    port = old.server.port
    with socket.socket() as held:  # another program holds the port on an address the move needs
        held.bind(("127.0.0.2", port))
        held.listen()
        with pytest.raises(ServerStartError, match=f"port {port}"):
            table.serve(definition(greet_v2), cell_id="cell-1", host=after)
    serving = table.get("greeter")
    assert serving is not None and (serving.server.host, serving.server.port) == (before, port)
    assert answer(at(before, port)) == "hello ann"
