"""notebooks/quickstart.ipynb in a real kernel, its service hit from outside the kernel."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.integration.kernel_session import KernelSession, notebook_in_kernel

pytestmark = pytest.mark.integration
ROW = [0.5, -1.0, 2.0, 0.1]


@pytest.fixture(scope="module")
def session():
    with notebook_in_kernel("quickstart.ipynb") as live:
        yield live


@pytest.fixture(scope="module")
def url(session: KernelSession) -> str:
    return session.evaluate("import bento_jupyter; print(bento_jupyter.service_url('iris'))").strip()


def batch_sizes(url: str) -> tuple[float, float]:
    text = requests.get(f"{url}/metrics", timeout=5).text
    total = dict(re.findall(r"^bentoml_service_adaptive_batch_size_(sum|count)\{[^}]*\} (\S+)$", text, re.M))
    return float(total["sum"]), float(total["count"])


class Load:
    """Closed-loop HTTP load from threads of the test process, bounded in count and time."""

    def __init__(self, url: str, clients: int = 16, max_requests: int = 20_000, max_seconds: float = 60) -> None:
        self.url, self.clients = url, clients
        self.max_requests, self.deadline = max_requests, time.monotonic() + max_seconds
        self.stop = threading.Event()
        self.outcomes: Counter[int] = Counter()
        self.answers: list[tuple[float, int]] = []
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._client, daemon=True) for _ in range(clients)]

    def _client(self) -> None:
        with requests.Session() as http:
            while not self.stop.is_set() and time.monotonic() < self.deadline:
                with self._lock:
                    if sum(self.outcomes.values()) >= self.max_requests:
                        return
                try:
                    answer = http.post(f"{self.url}/predict", json={"inputs": [ROW]}, timeout=10)
                    status, value = answer.status_code, answer.json()[0] if answer.ok else None
                except requests.RequestException:
                    status, value = -1, None
                with self._lock:
                    self.outcomes[status] += 1
                    if value is not None:
                        self.answers.append((time.monotonic(), value))

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(15)


def test_notebook_trains_serves_and_calls_its_own_service(session: KernelSession):
    out = session.text_of(session.cell_index("ThreadPoolExecutor"))
    accuracy = float(re.search(r"accuracy (\S+)", out).group(1))
    assert "200 answers over HTTP" in out and accuracy >= 0.9
    assert "iris serving at http://127.0.0.1:" in session.text_of(session.cell_index(r"%bento list"))


async def burst(url: str, connections: int, rounds: int) -> list[int]:
    """Send one request on each of ``connections`` open sockets at once, ``rounds`` times."""
    host, port = url.removeprefix("http://").split(":")
    body = json.dumps({"inputs": [ROW]}).encode()
    request = (
        f"POST /predict HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode() + body
    streams = [await asyncio.open_connection(host, int(port)) for _ in range(connections)]
    statuses = []
    try:
        for _ in range(rounds):
            for _, writer in streams:
                writer.write(request)
            for reader, _ in streams:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                length = int(re.search(rb"content-length: (\d+)", head, re.I).group(1))
                await reader.readexactly(length)
                statuses.append(int(head.split()[1]))
    finally:
        for _, writer in streams:
            writer.close()
    return statuses


def test_outside_clients_get_answers_and_concurrent_requests_are_batched(url: str):
    before_sum, before_count = batch_sizes(url)
    statuses = asyncio.run(burst(url, connections=64, rounds=10))
    assert statuses == [200] * 640
    items, batches = batch_sizes(url)
    assert items - before_sum == 640
    assert (items - before_sum) / (batches - before_count) > 1.5, "concurrent requests were not merged"


def test_many_threaded_clients_all_get_answers(url: str):
    def call(_: int) -> int:
        return requests.post(f"{url}/predict", json={"inputs": [ROW]}, timeout=10).status_code

    with ThreadPoolExecutor(32) as pool:
        assert list(pool.map(call, range(320))) == [200] * 320


def test_describe_and_error_paths_through_the_kernel_service(url: str):
    assert requests.post(f"{url}/describe", json={"text": "four"}, timeout=5).json() == {"length": 4}
    bad = requests.post(f"{url}/predict", json={"inputs": "no"}, timeout=5)
    assert bad.status_code == 400 and bad.json()["field"] == "inputs"


def test_kernel_executes_cells_while_the_server_is_under_load(session: KernelSession, url: str):
    with Load(url, clients=16, max_seconds=30) as load:
        time.sleep(1.0)
        assert sum(load.outcomes.values()) > 0
        started = time.monotonic()
        assert session.evaluate("print(6 * 7)").strip() == "42"
        elapsed = time.monotonic() - started
    assert load.outcomes[200] > 0 and set(load.outcomes) == {200}
    assert elapsed < 10, f"a trivial cell took {elapsed:.1f}s under load"


def test_rerunning_the_serve_cell_hot_swaps_without_failing_a_request(session: KernelSession, url: str):
    index = session.cell_index(r"^%%bento serve iris")
    original = session.nb.cells[index].source
    swapped = original.replace(".argmax(1).numpy()", ".argmax(1).numpy() + 100")
    assert swapped != original
    try:
        with Load(url, clients=8, max_seconds=30) as load:
            time.sleep(0.5)
            swap_started = time.monotonic()
            session.run(index, swapped)
            swap_done = time.monotonic()
            time.sleep(0.5)
        assert set(load.outcomes) == {200}, f"failed requests during swap: {load.outcomes}"
        assert any(t < swap_started and v < 100 for t, v in load.answers)
        assert all(v >= 100 for t, v in load.answers if t > swap_done + 0.1)
        after = session.evaluate("import bento_jupyter; print(bento_jupyter.service_url('iris'))").strip()
        assert after == url
    finally:
        session.run(index, original)


def test_bento_kernelspec_loads_the_extension_and_servers_stop_with_the_kernel():
    with notebook_in_kernel("quickstart.ipynb", kernel_name="bento-python3") as live:
        assert "iris serving" in live.evaluate("%bento list")
        url = live.evaluate("import bento_jupyter; print(bento_jupyter.service_url('iris'))").strip()
        assert requests.get(f"{url}/readyz", timeout=5).status_code == 200
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/readyz", timeout=5)
