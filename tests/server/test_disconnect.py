"""Clients that leave cost nothing: a queued request whose client disconnected never reaches the model."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import orjson
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.server.overload_helpers import GatedModel, metric, raw_request, read_status, wait_for

BODY = orjson.dumps({"inputs": [[1.0, 2.0]]})
V2_BODY = orjson.dumps({"inputs": [{"name": "inputs", "shape": [1, 2], "datatype": "FP64", "data": [1.0, 2.0]}]})
ROUTES = {"/predict": BODY, "/v2/models/predict/infer": V2_BODY}  # BentoML's route and Open Inference v2


@pytest.mark.parametrize("path", ROUTES)
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(leaves=st.lists(st.booleans(), min_size=1, max_size=12))
def test_queued_requests_whose_clients_closed_their_sockets_are_dropped_before_batching(serve, path, leaves):
    model = GatedModel()
    server = serve("leavers", model.api)
    model.hold()
    body = ROUTES[path]
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(requests.post, f"{server.url}{path}", data=body, timeout=30)
        wait_for(lambda: model.rows == [1])  # the model is busy with the first request
        sockets = [raw_request(server.url, path, body) for _ in leaves]
        wait_for(lambda: metric(server.url, "bentoml_service_request_in_progress") == 1 + len(leaves))
        for sock, leaving in zip(sockets, leaves, strict=True):
            if leaving:
                sock.close()
        time.sleep(0.2)  # the server's event loop reads the closed sockets' EOF while the model is still busy
        model.release()
        assert first.result().status_code == 200
        stayed = [sock for sock, leaving in zip(sockets, leaves, strict=True) if not leaving]
        assert [read_status(sock) for sock in stayed] == [200] * len(stayed)
        for sock in stayed:
            sock.close()
    computed = sum(model.rows[1:])
    assert computed == len(stayed)  # not one row of a client that left
    wait_for(lambda: metric(server.url, "bentoml_service_request_cancelled_total") == sum(leaves))
    assert metric(server.url, "bentoml_service_request_total", http_response_code="200") == 1 + len(stayed)
