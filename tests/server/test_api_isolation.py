"""One slow or hung API never takes the others down: each API has its own bounded concurrency."""

from __future__ import annotations

import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from bento_jupyter import api
from tests.server.overload_helpers import metric, wait_for

HANG_S = 30  # the handler's sleep; the test wakes it at the end, so its own time stays short


def test_probes_metrics_and_other_apis_answer_while_one_api_hangs(serve):
    wake = threading.Event()
    hanging = []

    @api(max_concurrency=2, max_queue_size=4)
    def hang(x: int) -> int:
        hanging.append(x)
        wake.wait(HANG_S)  # a handler sleeping 30 s
        return x

    def ping(x: int) -> int:  # a plain sync API with the default concurrency
        return x

    @api(timeout=0.3, max_concurrency=1)
    def stuck(x: int) -> int:
        wake.wait(HANG_S)
        return x

    server = serve("isolation", hang, ping, stuck)
    url = server.url
    pool = ThreadPoolExecutor(12)
    try:
        calls = [pool.submit(requests.post, f"{url}/hang", json={"x": i}, timeout=HANG_S + 10) for i in range(6)]
        in_progress = "bentoml_service_request_in_progress"
        wait_for(lambda: len(hanging) == 2 and metric(url, in_progress, endpoint="/hang") == 6)
        # two run, four wait: the waiting room is full, so the next call is refused at once
        began = time.monotonic()
        refused = requests.post(f"{url}/hang", json={"x": 99}, timeout=10)
        assert refused.status_code == 503 and "retry-after" in refused.headers
        assert time.monotonic() - began < 1

        latencies: dict[str, list[float]] = {}
        for _ in range(20):
            for name, call in {
                "readyz": lambda: requests.get(f"{url}/readyz", timeout=5),
                "livez": lambda: requests.get(f"{url}/livez", timeout=5),
                "metrics": lambda: requests.get(f"{url}/metrics", timeout=5),
                "ping": lambda: requests.post(f"{url}/ping", json={"x": 1}, timeout=5),
            }.items():
                began = time.monotonic()
                assert call().status_code == 200
                latencies.setdefault(name, []).append(time.monotonic() - began)
        for name, seconds in latencies.items():
            assert statistics.median(seconds) < 0.05, (name, seconds)

        # a hung API with a timeout answers 504 at it, and its one slot stays taken while the call runs on
        began = time.monotonic()
        assert requests.post(f"{url}/stuck", json={"x": 1}, timeout=10).status_code == 504
        assert requests.post(f"{url}/stuck", json={"x": 2}, timeout=10).status_code == 504
        assert time.monotonic() - began < 3
        assert metric(url, "bentoml_service_request_total", endpoint="/stuck", http_response_code="504") == 2
        assert requests.post(f"{url}/ping", json={"x": 2}, timeout=5).json() == 2
    finally:
        wake.set()
        assert [c.result().status_code for c in calls] == [200] * 6
        pool.shutdown()
