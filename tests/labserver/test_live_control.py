"""The sidebar's and the cell panel's view of a kernel's services through the Jupyter server: live stats and
Stop answer within 2 s while the kernel's main thread runs a cell (asleep or computing), with no message
sent to the kernel."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from jupyter_client.blocking import BlockingKernelClient

from tests.labserver.jupyter_process import API, JupyterServer, jupyter_server
from tests.labserver.kernel_calls import run_cell

pytestmark = pytest.mark.integration
BUSY_S = 8.0  # long enough to ask for stats, then stop, well inside it
WITHIN_S = 2.0
SERVE = """\
%%bento serve live
from bento_jupyter import api

@api(batchable=True, max_batch_size=8, max_latency_ms=20)
def predict(inputs: list[list[float]]) -> list[float]:
    return [sum(row) for row in inputs]
"""
BUSY_CELLS = {
    "sleeping": f"import time\ntime.sleep({BUSY_S})",
    "computing": f"import time\nend = time.monotonic() + {BUSY_S}\nn = 0\nwhile time.monotonic() < end:\n    n += 1",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    with jupyter_server(tmp_path_factory.mktemp("live")) as jupyter:
        yield jupyter


@pytest.fixture(scope="module")
def kernel(server: JupyterServer) -> Iterator[tuple[str, BlockingKernelClient]]:
    (server.root / "live.ipynb").write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    kernel_id = server.start_session("live.ipynb")
    with server.kernel_client(kernel_id) as client:
        run_cell(client, "%load_ext bento_jupyter")
        yield kernel_id, client


def services(server: JupyterServer, kernel_id: str) -> list[dict]:
    answer = server.api("GET", f"{API}/kernels/{kernel_id}/services", timeout=WITHIN_S)
    assert answer.status_code == 200, answer.text
    return answer.json()["services"]


class Traffic:
    """A client calling the service in a loop until stopped; counts its answers."""

    def __init__(self, url: str) -> None:
        self.url, self.answered, self._done = url, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with requests.Session() as session:
            while not self._done.is_set():
                try:
                    if session.post(f"{self.url}/predict", json={"inputs": [[1.0, 2.0]]}, timeout=5).ok:
                        self.answered += 1
                except requests.RequestException:
                    return  # the service stopped

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._thread.join(10)


def start_busy_cell(client: BlockingKernelClient, source: str) -> str:
    return client.execute(source, store_history=True)


def cell_finished(client: BlockingKernelClient, msg_id: str) -> bool:
    while True:
        try:
            message = client.get_shell_msg(timeout=0.01)
        except Exception:
            return False
        if message["parent_header"].get("msg_id") == msg_id:
            return True


@pytest.mark.parametrize("busy", sorted(BUSY_CELLS))
def test_stats_and_stop_answer_within_2s_while_a_cell_runs(server, kernel, busy):
    kernel_id, client = kernel
    run_cell(client, SERVE, cell_id=f"serve-{busy}")
    (listed,) = services(server, kernel_id)
    url = listed["url"]
    with Traffic(url) as traffic:
        msg_id = start_busy_cell(client, BUSY_CELLS[busy])
        time.sleep(1.0)  # the cell is under way
        began = time.monotonic()
        first = services(server, kernel_id)[0]["stats"]["requests"]
        time.sleep(0.5)
        asked = time.monotonic()
        (now,) = services(server, kernel_id)
        assert time.monotonic() - asked < WITHIN_S
        assert now["stats"]["requests"] > first > 0, (first, now["stats"])  # live, not frozen
        assert now["stats"]["rate_per_s"] > 0 and now["stats"]["p50_ms"] is not None
        assert set(now["stats"]) >= {"errors", "in_flight", "p99_ms", "mean_batch_size"}

        stopping = time.monotonic()
        stopped = server.api("POST", f"{API}/kernels/{kernel_id}/services/live/stop", timeout=WITHIN_S + 8)
        assert stopped.status_code == 200, stopped.text
        assert time.monotonic() - stopping < WITHIN_S, "stop waited for the cell"
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{url}/readyz", timeout=1)
        assert services(server, kernel_id) == []
        assert traffic.answered > 0
        assert time.monotonic() - began < BUSY_S - 1
        assert not cell_finished(client, msg_id), "the busy cell ended before the checks: they proved nothing"
    deadline = time.monotonic() + BUSY_S + 10
    while not cell_finished(client, msg_id):
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_stopping_an_unknown_service_is_404_and_the_routes_need_jupyter_auth(server, kernel):
    kernel_id, _ = kernel
    missing = server.api("POST", f"{API}/kernels/{kernel_id}/services/ghost/stop")
    assert missing.status_code == 404 and "ghost" in missing.json()["error"]
    assert server.api("GET", f"{API}/kernels/{kernel_id}/services", auth=False).status_code == 403
    assert server.api("POST", f"{API}/kernels/{kernel_id}/services/x/stop", auth=False).status_code == 403


def test_a_kernel_without_services_lists_none(server):
    assert services(server, "no-such-kernel") == []
    assert Path(server.runtime_dir).is_dir()
