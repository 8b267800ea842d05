"""A service's control routes: loopback only, token only, answered by the server thread."""

from __future__ import annotations

import json
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests

from bento_jupyter import api
from bento_jupyter.server.control import STATS_PATH, STOP_PATH, read_records
from bento_jupyter.server.running import RunningService, ServiceTable
from bento_jupyter.service.definition import ServiceDefinition


@api(batchable=True, max_batch_size=8)
def predict(inputs: np.ndarray) -> np.ndarray:
    return inputs.sum(axis=1)


@pytest.fixture
def runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path))
    return tmp_path


@pytest.fixture
def service(runtime: Path) -> Iterator[RunningService]:
    table = ServiceTable()
    yield table.serve(ServiceDefinition.from_functions("ctl", [predict]))
    table.stop_all()


def record_of(service: RunningService) -> dict:
    assert service.control_file is not None
    return json.loads(service.control_file.read_text())


def test_the_record_is_readable_by_this_user_only_and_names_a_loopback_control_port(service, runtime):
    assert service.control_file is not None and service.control_file.parent == runtime
    assert stat.S_IMODE(service.control_file.stat().st_mode) == 0o600
    record = record_of(service)
    assert record["control_url"].startswith("http://127.0.0.1:")
    assert not record["control_url"].endswith(f":{service.server.port}")
    assert [r.name for r in read_records(runtime)] == ["ctl"]


def test_control_routes_need_the_token_and_are_not_on_the_public_port(service):
    record = record_of(service)
    control = record["control_url"]
    assert requests.get(f"{service.url}{STATS_PATH}", timeout=5).status_code == 404
    public = requests.post(
        f"{service.url}{STOP_PATH}", headers={"Authorization": f"Bearer {record['token']}"}, timeout=5
    )
    assert public.status_code == 404 and service.running
    assert requests.get(f"{control}{STATS_PATH}", timeout=5).status_code == 401
    wrong = requests.post(f"{control}{STOP_PATH}", headers={"Authorization": "Bearer nope"}, timeout=5)
    assert wrong.status_code == 401 and service.running
    # The control port answers nothing but the control routes.
    assert requests.post(f"{control}/predict", json={"inputs": [[1.0]]}, timeout=5).status_code == 404


def test_stats_report_live_numbers_and_stop_stops_the_service(service, runtime):
    record = record_of(service)
    auth = {"Authorization": f"Bearer {record['token']}"}
    for _ in range(5):
        assert requests.post(f"{service.url}/predict", json={"inputs": [[1.0, 2.0]]}, timeout=5).ok
    stats = requests.get(f"{record['control_url']}{STATS_PATH}", headers=auth, timeout=5).json()
    assert stats["name"] == "ctl" and stats["port"] == service.server.port
    numbers = stats["stats"]
    assert numbers["requests"] == 5 and numbers["errors"] == 0 and numbers["in_flight"] == 0
    assert numbers["p50_ms"] > 0 and numbers["p99_ms"] >= numbers["p50_ms"] and numbers["mean_batch_size"] >= 1
    assert requests.post(f"{record['control_url']}{STOP_PATH}", headers=auth, timeout=5).status_code == 202
    deadline = time.monotonic() + 5
    while service.running and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not service.running
    assert not service.control_file.exists() and list(read_records(runtime)) == []
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{service.url}/readyz", timeout=2)


def test_records_of_dead_processes_are_dropped(runtime):
    stale = runtime / "bento-service-999999999-gone.json"
    stale.write_text(json.dumps({"name": "gone", "kernel_id": "k", "pid": 999999999, "control_url": "x", "token": "t"}))
    assert list(read_records(runtime)) == [] and not stale.exists()
