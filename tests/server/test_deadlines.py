"""Per-request deadlines (Envoy's x-envoy-expected-rq-timeout-ms, @api(timeout=)): refused at admission or
dropped before batching, never computed late."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import orjson
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bento_jupyter import api
from bento_jupyter.server.deadlines import DEADLINE_HEADER
from tests.server.overload_helpers import GatedModel, metric, wait_for

BODY = orjson.dumps({"inputs": [[1.0, 2.0]]})


@pytest.mark.parametrize("value", ["soon", "-5", "1.5", "1e3", "0x10"])
def test_a_deadline_header_that_is_not_whole_milliseconds_is_a_400_naming_it(serve, value):
    server = serve("deadlines", GatedModel().api)
    answer = requests.post(f"{server.url}/predict", data=BODY, headers={DEADLINE_HEADER: value}, timeout=10)
    assert answer.status_code == 400 and answer.json()["field"] == DEADLINE_HEADER


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(deadlines_ms=st.lists(st.integers(min_value=50, max_value=300), min_size=1, max_size=6))
def test_queued_requests_whose_deadline_passes_are_answered_504_and_never_computed(serve, deadlines_ms):
    model = GatedModel()
    server = serve("deadlines", model.api)
    model.hold()
    with ThreadPoolExecutor(1 + len(deadlines_ms)) as pool:
        first = pool.submit(requests.post, f"{server.url}/predict", data=BODY, timeout=30)
        wait_for(lambda: model.rows == [1])

        def timed(ms: int) -> tuple[int, float]:
            began = time.monotonic()
            answer = requests.post(f"{server.url}/predict", data=BODY, headers={DEADLINE_HEADER: str(ms)}, timeout=30)
            return answer.status_code, time.monotonic() - began

        late = [pool.submit(timed, ms) for ms in deadlines_ms]
        answers = [f.result() for f in late]  # all while the model is still busy with the first request
        model.release()
        assert first.result().status_code == 200
    assert [status for status, _ in answers] == [504] * len(deadlines_ms)
    for (_, seconds), ms in zip(answers, deadlines_ms, strict=True):
        assert seconds >= ms / 1000 * 0.9  # answered at its deadline, not before
    assert model.rows == [1]  # none of them reached the model, even once it was free


def test_a_deadline_the_model_cannot_meet_is_refused_at_admission(serve):
    model = GatedModel(seconds_per_call=0.2)
    server = serve("deadlines", model.api)
    for _ in range(3):  # the latency model learns that a call takes 200 ms
        assert requests.post(f"{server.url}/predict", data=BODY, timeout=30).status_code == 200
    calls = len(model.rows)
    answer = requests.post(f"{server.url}/predict", data=BODY, headers={DEADLINE_HEADER: "50"}, timeout=30)
    assert answer.status_code == 504 and "cannot be met" in answer.json()["error"]
    assert len(model.rows) == calls  # refused at admission: the model never saw it
    ok = requests.post(f"{server.url}/predict", data=BODY, headers={DEADLINE_HEADER: "5000"}, timeout=30)
    assert ok.status_code == 200


def test_api_timeout_answers_504_counted_in_metrics_and_the_header_only_shortens_it(serve):
    started = []
    release = threading.Event()

    @api(timeout=0.3)
    def nap(seconds: float) -> float:
        started.append(seconds)
        release.wait(seconds)
        return seconds

    server = serve("deadlines", nap)
    try:
        began = time.monotonic()
        assert requests.post(f"{server.url}/nap", json={"seconds": 5}, timeout=30).status_code == 504
        assert time.monotonic() - began < 2
        longer = requests.post(f"{server.url}/nap", json={"seconds": 1}, headers={DEADLINE_HEADER: "3000"}, timeout=30)
        assert longer.status_code == 504  # the header cannot extend the API's own timeout
        quick = requests.post(f"{server.url}/nap", json={"seconds": 0}, timeout=30)
        assert quick.status_code == 200
        runs = len(started)
        expired = requests.post(f"{server.url}/nap", json={"seconds": 0}, headers={DEADLINE_HEADER: "0"}, timeout=30)
        assert expired.status_code == 504 and len(started) == runs  # refused before the handler ran
        assert metric(server.url, "bentoml_service_request_total", endpoint="/nap", http_response_code="504") == 3
    finally:
        release.set()


def test_the_open_inference_route_honours_the_deadline_header(serve):
    model = GatedModel()
    server = serve("deadlines", model.api)
    url = f"{server.url}/v2/models/predict/infer"
    body = {"inputs": [{"name": "inputs", "shape": [1, 2], "datatype": "FP32", "data": [1.0, 2.0]}]}
    assert requests.post(url, json=body, timeout=10).status_code == 200
    calls = len(model.rows)
    expired = requests.post(url, json=body, headers={DEADLINE_HEADER: "0"}, timeout=10)
    assert expired.status_code == 504 and len(model.rows) == calls
    malformed = requests.post(url, json=body, headers={DEADLINE_HEADER: "soon"}, timeout=10)
    assert malformed.status_code == 400 and malformed.json()["field"] == DEADLINE_HEADER


@pytest.mark.parametrize("kind", ["sync", "async"])
@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(waiting=st.integers(min_value=1, max_value=4))
def test_a_plain_api_never_starts_a_call_its_deadline_leaves_too_little_time_for(serve, kind, waiting):
    call_s, deadline_ms = 0.3, 650  # every call takes 300 ms; the waiters get the slot with ~200 ms left
    gate, started = threading.Event(), []

    def work(i: int) -> int:
        started.append(i)
        if i < 0:
            gate.wait(30)  # the call that holds the one slot until the test lets it go
        time.sleep(call_s)
        return i

    @api(name="plain", max_concurrency=1)
    def sync_plain(i: int) -> int:
        return work(i)

    @api(name="plain", max_concurrency=1)
    async def async_plain(i: int) -> int:
        return work(i)

    server = serve("plain_deadlines", sync_plain if kind == "sync" else async_plain)
    url = f"{server.url}/plain"
    assert requests.post(url, json={"i": 0}, timeout=10).status_code == 200  # it learns a call takes 300 ms
    with ThreadPoolExecutor(1 + waiting) as pool:
        holder = pool.submit(requests.post, url, json={"i": -1}, timeout=30)
        wait_for(lambda: started == [0, -1])
        headers = {DEADLINE_HEADER: str(deadline_ms)}
        waiters = [
            pool.submit(requests.post, url, json={"i": i}, headers=headers, timeout=30) for i in range(1, 1 + waiting)
        ]
        wait_for(lambda: metric(server.url, "bentoml_service_request_in_progress") == 1 + waiting)
        time.sleep(0.1)  # the slot frees ~420 ms after they came: ~200 ms before their deadline, < a call
        gate.set()
        assert holder.result().status_code == 200
        assert [w.result().status_code for w in waiters] == [504] * waiting
    assert started == [0, -1]  # the handler never started for any of them
