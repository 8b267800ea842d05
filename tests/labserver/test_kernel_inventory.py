"""kernel_inventory in a real kernel started by a real Jupyter server, asked exactly as the panel asks
(silent execute requests with user_expressions), and the effects checked from outside the kernel."""

from __future__ import annotations

import json
import time

import pytest
import requests

from bento_jupyter.bento.manifest_paths import MODEL_MANIFEST_NAME
from tests.labserver.conftest import DEMO_CELLS, DEMO_PATH, head_commit
from tests.labserver.jupyter_process import API
from tests.labserver.kernel_calls import JOBS_CELL, inventory, run_cell

pytestmark = pytest.mark.integration

ROW = [[0.5, -1.0, 2.0, 0.0]]


def service(client, name: str) -> dict:
    return next(s for s in inventory(client, "report()")["services"] if s["name"] == name)


def test_report_works_before_load_ext_and_lists_only_model_like_variables(jupyter):
    kernel_id = jupyter.start_session("work/fresh.ipynb")
    try:
        with jupyter.kernel_client(kernel_id) as client:
            assert inventory(client, "report()") == {"services": [], "models": []}
            run_cell(client, DEMO_CELLS["setup-cell"], "setup-cell")
            models = {m["variable"]: m for m in inventory(client, "report()")["models"]}
            assert run_cell(client, "print(getattr(get_ipython(), '_bento_magics', None))") == "None\n"
    finally:
        jupyter.api("DELETE", f"api/kernels/{kernel_id}")
    assert sorted(models) == ["clf", "echo", "model"]  # not _private_model, table, helper, np, torch, classes
    weights = (4 * 8 + 8 + 8 * 3 + 3) * 4 + 3 * 4  # float32 parameters plus the "scale" buffer
    assert models["model"] == {
        "variable": "model",
        "type": "torch.nn.modules.container.Sequential",
        "kind": "torch",
        "size_bytes": weights,
        "size_exact": True,
        "device": "cpu",
    }
    clf = models["clf"]
    assert (clf["type"], clf["kind"], clf["device"], clf["size_exact"]) == ("Threshold", "estimator", "cpu", False)
    assert 32 < clf["size_bytes"] < 4096  # its 4 float64 cut points plus the instance, not the training data
    assert (models["echo"]["type"], models["echo"]["kind"]) == ("Echo", "predictor")


def test_report_shows_the_service_with_its_endpoints_and_live_stats(demo):
    entry = service(demo, "demo")
    assert entry["url"] == f"http://127.0.0.1:{entry['port']}" and entry["host"] == "127.0.0.1"
    assert entry["cell_id"] == "serve-cell"
    assert [(e["name"], e["route"], e["batchable"]) for e in entry["endpoints"]] == [
        ("predict", "/predict", True),
        ("threshold", "/threshold", False),
    ]
    before = entry["stats"]["requests"]
    for _ in range(5):
        assert requests.post(f"{entry['url']}/predict", json={"inputs": ROW}, timeout=30).status_code == 200
    assert requests.post(f"{entry['url']}/threshold", json={"inputs": [[5000] * 4]}, timeout=30).json() == [4]
    after = service(demo, "demo")
    per_endpoint = {e["name"]: e["stats"] for e in after["endpoints"]}
    assert after["stats"]["requests"] == before + 6
    assert per_endpoint["threshold"]["requests"] >= 1 and per_endpoint["predict"]["requests"] >= 5
    assert after["stats"]["rate_per_s"] > 0 and after["stats"]["p99_ms"] > 0
    assert after["stats"]["mean_batch_size"] >= 1 and per_endpoint["threshold"]["mean_batch_size"] is None


def test_the_proxy_route_reaches_the_service_for_authenticated_users_only(jupyter, demo):
    entry = service(demo, "demo")
    direct = requests.post(f"{entry['url']}/predict", json={"inputs": ROW}, timeout=30).json()
    proxied = jupyter.api("POST", f"proxy/{entry['port']}/predict", json={"inputs": ROW})
    assert proxied.status_code == 200 and proxied.json() == direct
    docs = jupyter.api("GET", f"proxy/{entry['port']}/")
    assert docs.status_code == 200 and "swagger-ui" in docs.text  # relative links work under the prefix
    stranger = jupyter.api("GET", f"proxy/{entry['port']}/readyz", auth=False, allow_redirects=False)
    assert stranger.status_code in (302, 403)


def test_stop_service_closes_its_port_and_the_kernel_reports_it_stopped(demo):
    run_cell(demo, "%%bento serve stopme\ndef flip(text: str) -> str:\n    return text[::-1]\n", "stopme-cell")
    url = service(demo, "stopme")["url"]
    assert requests.post(f"{url}/flip", json={"text": "abc"}, timeout=30).text == "cba"
    assert inventory(demo, "stop_service('stopme')") == {"ok": True, "message": "stopped stopme"}
    with pytest.raises(requests.ConnectionError):
        requests.post(f"{url}/flip", json={"text": "abc"}, timeout=5)
    assert "stopme" not in [s["name"] for s in inventory(demo, "report()")["services"]]
    assert "stopme" not in run_cell(demo, "%bento list")
    assert inventory(demo, "stop_service('stopme')") == {"ok": False, "error": "no service named 'stopme' is running"}


def test_save_model_writes_the_model_store_like_percent_bento_save(jupyter, demo):
    saved = inventory(demo, "save_model('clf')")
    assert saved == {"ok": True, "tag": saved["tag"], "message": f"saved model {saved['tag']}"}
    number = int(saved["tag"].removeprefix("clf:"))
    assert run_cell(demo, "%bento save clf").startswith(f"saved model clf:{number + 1} ")  # one store, one path
    listing = jupyter.api("GET", f"{API}/local/models").json()
    assert listing["root"] == str(jupyter.home / "models")
    assert {f"clf:{number}", f"clf:{number + 1}"} <= {item["tag"] for item in listing["items"]}
    manifest = json.loads((jupyter.home / "models" / "clf" / str(number) / MODEL_MANIFEST_NAME).read_text())
    assert [c["cell_id"] for c in manifest["lineage"]["cells"]] == ["setup-cell"]  # where Threshold is defined
    assert manifest["lineage"]["notebook_path"].endswith(DEMO_PATH)
    named = inventory(demo, "save_model('model', name='demo-net')")
    assert named["ok"] and named["tag"].startswith("demo-net:")
    assert inventory(demo, "save_model('nope')") == {"ok": False, "error": "no variable named 'nope' in the notebook"}


def test_build_service_makes_a_bento_whose_detail_carries_the_notebook_lineage(jupyter, demo):
    built = inventory(demo, "build_service('demo')")
    assert built["ok"] and built["message"] == f"built bento {built['tag']}"
    version = built["tag"].removeprefix("demo:")
    detail = jupyter.api("GET", f"{API}/bentos/demo/{version}").json()
    lineage = detail["lineage"]
    assert detail["notebook"] == {"path": DEMO_PATH}
    assert lineage["notebook_path"] == str((jupyter.root / DEMO_PATH).resolve())
    assert [(c["cell_id"], c["source"]) for c in lineage["cells"]] == [
        ("setup-cell", DEMO_CELLS["setup-cell"]),
        ("serve-cell", DEMO_CELLS["serve-cell"]),
    ]
    assert lineage["git"]["commit"] == head_commit(jupyter.root)
    assert [api["name"] for api in detail["apis"]] == ["predict", "threshold"]
    assert inventory(demo, "build_service('ghost')") == {
        "ok": False,
        "error": "no service named 'ghost'; run its %%bento serve cell first",
    }


def test_serve_version_pulls_from_the_registry_and_serves_in_this_kernel(jupyter, demo, lab_registry):
    jupyter.set_registry(lab_registry.url, lab_registry.tokens["write"])
    built = inventory(demo, "build_service('demo')")
    pushed = jupyter.api("POST", f"{API}/push", json={"tag": built["tag"]}).json()
    moved = jupyter.api("PUT", f"{API}/bentos/demo/aliases/prod", json={"version": pushed["version"]})
    jupyter.set_registry("")
    assert moved.status_code == 200
    call = f"serve_version('demo@prod', {lab_registry.url!r}, {lab_registry.tokens['read']!r})"
    refused = inventory(demo, call)
    assert refused == {"ok": False, "error": "a service named 'demo' already runs here: stop it first"}
    bad_token = inventory(demo, f"serve_version('demo@prod', {lab_registry.url!r}, 'bjr_bad.token')")
    assert not bad_token["ok"] and "unknown or revoked token" in bad_token["error"]
    assert inventory(demo, "stop_service('demo')")["ok"]
    try:
        served = inventory(demo, call)
        assert served["ok"] and served["name"] == "demo" and served["url"].endswith(f":{served['port']}")
        assert requests.post(f"{served['url']}/threshold", json={"inputs": [[5000] * 4]}, timeout=30).json() == [4]
        assert service(demo, "demo")["cell_id"] is None  # served from a bento, not from a cell
        assert inventory(demo, "stop_service('demo')")["ok"]
        local = inventory(demo, f"serve_version({built['tag']!r})")  # no registry: the local store
        assert local["ok"] and local["tag"] == built["tag"]
        assert requests.post(f"{local['url']}/predict", json={"inputs": ROW}, timeout=30).status_code == 200
        assert inventory(demo, "serve_version('demo@prod')") == {
            "ok": False,
            "error": "demo@prod: aliases live in a registry; set registryUrl in Settings > Bento",
        }
    finally:
        inventory(demo, "stop_service('demo')")
        run_cell(demo, DEMO_CELLS["serve-cell"], "serve-cell")  # the notebook's own service again


def test_report_lists_a_services_tasks_and_cancel_task_stops_them(jupyter):
    kernel_id = jupyter.start_session("work/jobs.ipynb")
    try:
        with jupyter.kernel_client(kernel_id) as client:
            run_cell(client, "%load_ext bento_jupyter")
            run_cell(client, JOBS_CELL, "jobs-cell")
            url = service(client, "jobs")["url"] + "/long_job"
            running = requests.post(f"{url}/submit", json={"seconds": 30}, timeout=10).json()["task_id"]
            queued = requests.post(f"{url}/submit", json={"seconds": 30}, timeout=10).json()["task_id"]
            deadline = time.monotonic() + 10
            while requests.get(f"{url}/status", params={"task_id": running}, timeout=10).json()["status"] != (
                "in_progress"
            ):
                assert time.monotonic() < deadline
                time.sleep(0.05)
            listed = service(client, "jobs")
            assert [(e["name"], e["task"], e["stream"]) for e in listed["endpoints"]] == [("long_job", True, False)]
            assert [(t["task_id"], t["status"]) for t in listed["tasks"]] == [
                (queued, "pending"),
                (running, "in_progress"),
            ]
            assert inventory(client, f"cancel_task('jobs', {queued!r})") == {
                "ok": True,
                "message": f"canceled task {queued}",
            }
            assert inventory(client, f"cancel_task('jobs', {running!r})")["message"] == f"asked task {running} to stop"
            while requests.get(f"{url}/status", params={"task_id": running}, timeout=10).json()["status"] != (
                "canceled"
            ):
                assert time.monotonic() < deadline + 10
                time.sleep(0.05)
            assert {t["task_id"]: t["status"] for t in service(client, "jobs")["tasks"]} == {
                queued: "canceled",
                running: "canceled",
            }
            assert inventory(client, "cancel_task('jobs', 'nope')")["ok"] is False
    finally:
        jupyter.api("DELETE", f"api/kernels/{kernel_id}")
