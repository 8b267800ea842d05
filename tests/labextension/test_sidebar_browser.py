"""The Bento sidebar in a real JupyterLab, driven in Debian's Chromium: run the quickstart, try its API in Swagger
(directly and through the proxy), then build, push, inspect lineage, open the source notebook and save a model
from the panel, and stop services from the panel and from the cell while other cells run; registry and kernel
failures read as messages in the panel. The tests run in order on one page, each building on the last; each step
leaves a full-window screenshot under test-artifacts/labextension/."""

from __future__ import annotations

import json
import re
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from bento_jupyter.bento.local_store import Store
from bento_jupyter.bento.manifest import read_manifest, write_manifest
from bento_jupyter.bento.manifest_model import BentoManifest
from bento_jupyter.registry.client.remote import push
from tests.labextension.sidebar_lab import SidebarLab
from tests.labextension.ui_steps import (
    NOTEBOOK,
    RUN_TIMEOUT_MS,
    by_testid,
    open_notebook,
    run_menu,
    screenshot,
    try_it_out,
)
from tests.registry.conftest import RegistryProcess, free_port

pytestmark = pytest.mark.integration


KERNEL_FRAMES: list[bytes] = []  # what the kernel's websocket brought the page, for the busy-indicator check


def record_kernel_frames(page: Any) -> None:
    def on_socket(socket: Any) -> None:
        if "/api/kernels/" in socket.url:
            socket.on("framereceived", lambda payload: KERNEL_FRAMES.append(_as_bytes(payload)))

    page.on("websocket", on_socket)


def _as_bytes(payload: Any) -> bytes:
    return payload if isinstance(payload, bytes) else str(payload).encode()


def busy_messages(frames: list[bytes]) -> int:
    return sum(1 for f in frames if re.search(rb'"execution_state"\s*:\s*"busy"', f))


def service_port(page: Any, name: str = "iris") -> int:
    href = (
        by_testid(page, "bento-service", name=name).locator('[data-testid="bento-service-url"]').get_attribute("href")
    )
    return int(re.search(r"/proxy/(\d+)/", href).group(1))


def total_requests(locator: Any) -> int:
    return int(re.search(r"(\d+) total", locator.inner_text()).group(1))


def notebook_cells(page: Any) -> Any:
    return page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell")


def run_new_cell(page: Any, source: str) -> None:
    """Add a cell at the end of the notebook, type ``source`` and run it (Shift+Enter), as a user would."""
    notebook_cells(page).last.locator(".jp-InputPrompt").click()
    page.keyboard.press("Escape")
    page.keyboard.press("b")
    page.keyboard.press("Enter")
    page.keyboard.type(source)
    page.keyboard.press("Shift+Enter")


def interrupt_kernel(page: Any) -> None:
    page.locator(".lm-MenuBar-itemLabel").get_by_text("Kernel", exact=True).click()
    page.locator(".lm-Menu-itemLabel").get_by_text("Interrupt Kernel", exact=True).click()


class Traffic:
    """Calls the service from outside the kernel until stopped, so its numbers move."""

    def __init__(self, url: str) -> None:
        self.url, self.done = url, threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        with requests.Session() as session:
            while not self.done.wait(0.02):
                try:
                    session.post(f"{self.url}/predict", json={"inputs": [[0.5, -1.0, 2.0, 0.1]]}, timeout=5)
                except requests.RequestException:
                    return

    def __enter__(self) -> Traffic:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.done.set()
        self.thread.join(10)


def active_tab_title(page: Any) -> str:
    return page.locator("#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current .lm-TabBar-tabLabel").inner_text()


def test_running_the_quickstart_shows_its_service_with_a_proxied_url(page: Any, lab: SidebarLab):
    record_kernel_frames(page)
    open_notebook(page, lab)
    assert by_testid(page, "bento-notebook").inner_text() == NOTEBOOK
    run_menu(page, "Run All Cells")

    card = by_testid(page, "bento-service", name="iris")
    card.wait_for(timeout=RUN_TIMEOUT_MS)
    link = card.locator('[data-testid="bento-service-url"]')
    port = int(re.fullmatch(r"http://127\.0\.0\.1:\d+/proxy/(\d+)/", link.get_attribute("href")).group(1))
    assert link.inner_text() == f"{lab.url}proxy/{port}/"
    endpoints = card.locator('[data-testid="bento-endpoint"]').all_inner_texts()
    assert endpoints == ["POST /predict batched", "POST /describe"]
    # The quickstart's own cells called the service 200 times over HTTP: the live numbers count them.
    page.wait_for_function(
        "() => Number(/(\\d+) total/.exec(document.querySelector('[data-testid=bento-service-stats]').innerText)?.[1])"
        " >= 200"
    )
    through_proxy = lab.api("POST", f"proxy/{port}/predict", json={"inputs": [[0.5, -1.0, 2.0, 0.1]]})
    assert through_proxy.status_code == 200, through_proxy.text
    assert through_proxy.json()[0] in (0, 1, 2)
    assert busy_messages(KERNEL_FRAMES) > 0  # Run All made the kernel busy: the frames are being recorded
    # The cell's own panel: links, endpoints, live numbers.
    cell_panel = by_testid(page, "bento-cell-panel", name="iris")
    cell_panel.wait_for()
    assert by_testid(page, "bento-cell-docs").get_attribute("href") == f"{lab.url}proxy/{port}/"
    assert cell_panel.locator('[data-testid="bento-cell-endpoint"]').all_inner_texts() == [
        "POST /predict batched",
        "POST /describe",
    ]
    page.wait_for_function(
        "() => Number(/(\\d+) total/.exec(document.querySelector('[data-testid=bento-cell-stats]').innerText)?.[1])"
        " >= 200"
    )
    screenshot(page, "1-service-running")


def test_the_open_panel_sends_the_idle_kernel_nothing_on_a_timer(page: Any):
    by_testid(page, "bento-kernel", status="idle").wait_for()
    time.sleep(1)  # the last cell's replies are in
    KERNEL_FRAMES.clear()
    stats = by_testid(page, "bento-service-stats")
    before = total_requests(stats)
    requests.post(f"http://127.0.0.1:{service_port(page)}/predict", json={"inputs": [[0.5, -1.0, 2.0, 0.1]]}, timeout=5)
    page.wait_for_function(
        f"() => Number(/(\\d+) total/.exec(document.querySelector('[data-testid=bento-service-stats]').innerText)?.[1])"
        f" > {before}"
    )
    time.sleep(5)  # two and a half polls of the sidebar, five of the cell's panel
    assert busy_messages(KERNEL_FRAMES) == 0, "the panel made the kernel busy while no cell ran"


def test_swagger_try_it_out_answers_200_directly_and_through_the_proxy(page: Any, lab: SidebarLab):
    port = service_port(page)
    swagger = page.context.new_page()
    try:
        assert try_it_out(swagger, f"http://127.0.0.1:{port}/") == "200"
        screenshot(swagger, "1b-swagger-direct")
        assert try_it_out(swagger, f"{lab.url}proxy/{port}/") == "200"  # the panel's link, with Jupyter's cookie
        body = swagger.locator(
            "#operations-default-predict .live-responses-table tr.response .response-col_description pre"
        )
        assert re.fullmatch(r"\[\s*[012]\s*\]", body.first.inner_text().strip())
        screenshot(swagger, "1c-swagger-through-proxy")
    finally:
        swagger.close()


def test_build_and_push_from_the_panel_show_the_version_and_its_lineage(
    page: Any, lab: SidebarLab, registry: RegistryProcess
):
    card = by_testid(page, "bento-service", name="iris")
    card.locator('[data-testid="bento-build"]').click()
    built = card.locator('[data-testid="bento-service-message"][data-kind="info"]')
    built.filter(has_text="built bento iris:1").wait_for(timeout=RUN_TIMEOUT_MS)
    assert [item.tag for item in Store("bentos", lab.home).list()] == ["iris:1"]

    by_testid(page, "bento-push", tag="iris:1").click()
    by_testid(page, "bento-push-message", kind="info").filter(has_text="Pushed iris:1").wait_for(timeout=RUN_TIMEOUT_MS)
    published = registry.api("GET", "/bentos/iris/versions/1", scope="read")
    assert published.status_code == 200, published.text

    bento = by_testid(page, "bento-bento", name="iris")
    bento.locator('[data-testid="bento-bento-toggle"]').click()
    bento.locator('[data-testid="bento-version"][data-version="1"] button').click()
    detail = by_testid(page, "bento-version-detail", ref="iris:1")
    detail.wait_for()
    assert by_testid(page, "bento-lineage-notebook").inner_text() == NOTEBOOK
    assert by_testid(page, "bento-lineage-git").inner_text().startswith(lab.commit[:10])
    cells = by_testid(page, "bento-lineage-cell").all_inner_texts()
    assert any("%%bento serve iris" in text for text in cells), cells
    verified = by_testid(page, "bento-verification")
    assert verified.get_attribute("data-state") == "passed", verified.inner_text()
    assert "answered as the kernel did" in verified.inner_text()
    screenshot(page, "2-version-lineage")


def test_open_notebook_opens_the_source_notebook_at_the_serving_cell(page: Any, lab: SidebarLab):
    page.locator('.jp-NotebookPanel-toolbar [data-command="docmanager:save"]').click()  # closing asks nothing then
    page.wait_for_function("() => !document.querySelector('#jp-main-dock-panel .lm-TabBar-tab.jp-mod-dirty')")
    saved = json.loads((lab.root / NOTEBOOK).read_text())
    (serve_cell,) = [c for c in saved["cells"] if "".join(c["source"]).startswith("%%bento serve iris")]
    (panel_output,) = [o for o in serve_cell["outputs"] if "application/vnd.bento-jupyter.service+json" in o["data"]]
    plain = "".join(panel_output["data"]["text/plain"])
    assert plain.startswith("iris serving at http://127.0.0.1:") and "POST /predict" in plain and "VBox" not in plain
    notebook_tab = page.locator("#jp-main-dock-panel .lm-TabBar-tab", has_text=NOTEBOOK)
    notebook_tab.locator(".lm-TabBar-tabCloseIcon").click()
    notebook_tab.wait_for(state="detached")

    by_testid(page, "bento-open-notebook").click()
    page.locator("#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current", has_text=NOTEBOOK).wait_for()
    assert active_tab_title(page) == NOTEBOOK
    active = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell.jp-mod-active .jp-InputArea-editor")
    active.filter(has_text="%%bento serve iris").wait_for()
    screenshot(page, "3-open-notebook")


def test_save_model_from_the_panel_puts_it_in_the_store(page: Any, lab: SidebarLab):
    row = by_testid(page, "bento-model", variable="model")
    row.wait_for()
    assert row.locator('[data-testid="bento-model-name"]').get_attribute("placeholder") == "model"
    row.locator('[data-testid="bento-model-name"]').fill("iris-net")
    row.locator('[data-testid="bento-save-model"]').click()
    saved = row.locator('[data-testid="bento-model-message"][data-kind="info"]')
    saved.filter(has_text="saved model iris-net:1").wait_for(timeout=RUN_TIMEOUT_MS)
    assert [item.tag for item in Store("models", lab.home).list()] == ["iris-net:1"]
    by_testid(page, "bento-stored-model", tag="iris-net:1").wait_for()
    screenshot(page, "4-model-saved")
    saved.wait_for(state="detached", timeout=15_000)  # read, then gone: messages do not pile up


def test_while_a_cell_runs_stats_stay_live_and_the_cells_stop_works_within_2s(page: Any, lab: SidebarLab):
    port = service_port(page)
    card = by_testid(page, "bento-service", name="iris")
    cell_panel = by_testid(page, "bento-cell-panel", name="iris")
    cell_panel.locator('[data-testid="bento-cell-stats"]').wait_for()  # the reopened notebook's panel is live
    run_new_cell(page, "import time; time.sleep(60)")
    by_testid(page, "bento-kernel", status="busy").wait_for()
    with Traffic(f"http://127.0.0.1:{port}"):
        sidebar_before = total_requests(card.locator('[data-testid="bento-service-stats"]'))
        cell_before = total_requests(cell_panel.locator('[data-testid="bento-cell-stats"]'))
        time.sleep(2.5)  # more than one poll of each
        assert total_requests(card.locator('[data-testid="bento-service-stats"]')) > sidebar_before
        assert total_requests(cell_panel.locator('[data-testid="bento-cell-stats"]')) > cell_before
        screenshot(page, "5-live-while-a-cell-runs")
        clicked = time.monotonic()
        cell_panel.locator('[data-testid="bento-cell-stop"]').click()
        by_testid(page, "bento-cell-panel", name="iris", state="stopped").wait_for(timeout=2_000)
        assert time.monotonic() - clicked < 2.0
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
    card.wait_for(state="detached", timeout=5_000)  # the sidebar's next poll
    assert by_testid(page, "bento-kernel").get_attribute("data-status") == "busy"  # the cell still runs
    screenshot(page, "5b-stopped-from-the-cell")
    interrupt_kernel(page)
    by_testid(page, "bento-kernel", status="idle").wait_for(timeout=30_000)

    # The kernel itself says so: a new cell running %bento list. (Not the port: other test runs on this machine
    # may take a freed port at once, the quickstart's services all scan from 3000.)
    run_new_cell(page, "%bento list")
    outputs = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output")
    outputs.filter(has_text="no services running").wait_for()
    screenshot(page, "5c-service-stopped")


def test_serve_a_registry_version_and_set_an_alias_from_the_panel(
    page: Any, lab: SidebarLab, registry: RegistryProcess
):
    detail = by_testid(page, "bento-version-detail", ref="iris:1")
    detail.locator('[data-testid="bento-serve-version"]').click()
    card = by_testid(page, "bento-service", name="iris")
    card.wait_for(timeout=RUN_TIMEOUT_MS)
    port = int(re.search(r"/proxy/(\d+)/", card.locator('[data-testid="bento-service-url"]').inner_text()).group(1))
    answer = lab.api("POST", f"proxy/{port}/predict", json={"inputs": [[0.5, -1.0, 2.0, 0.1]]})
    assert answer.status_code == 200, answer.text

    detail.locator('[data-testid="bento-alias-input"]').fill("prod")
    detail.locator('[data-testid="bento-set-alias"]').click()
    detail.locator('[data-testid="bento-version-message"]').filter(has_text="iris@prod -> version 1").wait_for()
    by_testid(page, "bento-version", version="1").filter(has_text="@prod").wait_for()
    alias = registry.api("GET", "/bentos/iris/aliases/prod", scope="read")
    assert alias.status_code == 200 and alias.json()["version"] == 1, alias.text
    screenshot(page, "6-served-from-registry")


def publish_a_second_iris(lab: SidebarLab, registry: RegistryProcess, scratch: Path) -> None:
    """iris:1 with one more file, published as registry version 2 (same API: the promotion gate lets it pass)."""
    source = Store("bentos", lab.home).resolve("iris:1").path
    manifest = read_manifest(source)

    def fill(root: Path) -> None:
        shutil.copytree(source, root, dirs_exist_ok=True)
        (root / "NOTES.md").write_text("the same service, one more file\n")
        write_manifest(
            root,
            BentoManifest.model_validate(
                {k: v for k, v in manifest.document.items() if k not in ("files", "digest", "schema_version")}
            ),
        )

    other = Store("bentos", scratch)
    other.add("iris", fill)
    assert push("iris:1", registry.url, registry.tokens["write"], store=other).version == 2


def test_alias_history_and_rollback_from_the_panel(
    page: Any, lab: SidebarLab, registry: RegistryProcess, tmp_path: Path
):
    publish_a_second_iris(lab, registry, tmp_path)
    moved = registry.api("PUT", "/bentos/iris/aliases/prod", json={"version": 2, "expected": 1, "reason": "v2 out"})
    assert moved.status_code == 200, moved.text
    alias = by_testid(page, "bento-alias", alias="prod", version="2")
    alias.wait_for(timeout=30_000)  # the panel polls
    alias.locator('[data-testid="bento-alias-history-toggle"]').click()
    events = alias.locator('[data-testid="bento-alias-event"]')
    events.first.filter(has_text="moved 1 → 2: v2 out").wait_for()
    assert events.count() == 2

    alias.locator('[data-testid="bento-alias-rollback"]').click()
    page.locator(".jp-Dialog input").fill("canary errors")
    page.locator(".jp-Dialog .jp-mod-accept").click()
    by_testid(page, "bento-alias-message", kind="info").filter(has_text="iris@prod: 2 → 1 (rolled back)").wait_for()
    assert registry.api("GET", "/bentos/iris/aliases/prod", scope="read").json()["version"] == 1
    rolled = by_testid(page, "bento-alias", alias="prod", version="1")
    rolled.locator('[data-testid="bento-alias-event"][data-action="rollback"]').filter(
        has_text="rolled back 2 → 1: canary errors"
    ).wait_for()
    screenshot(page, "7-alias-rolled-back")

    rolled.locator('[data-testid="bento-alias-rollback"]').click()
    page.locator(".jp-Dialog .jp-mod-accept").click()
    refused = rolled.locator('[data-testid="bento-alias-message"][data-kind="error"]')
    refused.filter(has_text="no earlier target").wait_for()


def test_the_panels_stop_works_within_2s_while_a_cell_computes(page: Any):
    card = by_testid(page, "bento-service", name="iris")
    port = service_port(page)
    run_new_cell(page, "import time\nend = time.monotonic() + 60\nwhile time.monotonic() < end:\n    pass")
    by_testid(page, "bento-kernel", status="busy").wait_for()
    time.sleep(0.5)
    clicked = time.monotonic()
    card.locator('[data-testid="bento-stop"]').click()
    card.wait_for(state="detached", timeout=2_000)
    assert time.monotonic() - clicked < 2.0
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
    assert by_testid(page, "bento-kernel").get_attribute("data-status") == "busy"
    screenshot(page, "6b-stopped-from-the-panel-while-computing")
    interrupt_kernel(page)
    by_testid(page, "bento-kernel", status="idle").wait_for(timeout=30_000)


def reload_with_registry(page: Any, lab: SidebarLab, url: str, token: str) -> None:
    """New settings reach the page when it loads; the layout restorer brings the panel back open."""
    lab.set_registry(url, token)
    page.reload()
    page.locator("#jupyterlab-splash").wait_for(state="detached", timeout=60_000)
    by_testid(page, "bento-sidebar").wait_for(timeout=10_000)


def test_registry_failures_read_as_messages_in_the_panel(page: Any, lab: SidebarLab, registry: RegistryProcess):
    closed = free_port()
    reload_with_registry(page, lab, f"http://127.0.0.1:{closed}", registry.tokens["write"])
    unreachable = by_testid(page, "bento-registry-error")
    unreachable.wait_for()
    assert f"127.0.0.1:{closed}" in unreachable.inner_text()
    screenshot(page, "8-registry-unreachable")

    reload_with_registry(page, lab, registry.url, "not-a-token")
    refused = by_testid(page, "bento-registry-error")
    refused.filter(has_text="token").wait_for()
    screenshot(page, "9-registry-bad-token")

    # The local store: no Set alias (it could only fail) and no Push, each saying why.
    reload_with_registry(page, lab, "", "")
    by_testid(page, "bento-registry-source", source="local").wait_for()
    by_testid(page, "bento-push-hint").filter(has_text="registryUrl").wait_for()
    bento = by_testid(page, "bento-bento", name="iris")
    bento.locator('[data-testid="bento-bento-toggle"]').click()
    bento.locator('[data-testid="bento-version"][data-version="1"] button').click()
    by_testid(page, "bento-alias-hint").filter(has_text="registry").wait_for()
    assert by_testid(page, "bento-set-alias").count() == 0 and by_testid(page, "bento-push").count() == 0
    screenshot(page, "8b-local-store")

    reload_with_registry(page, lab, registry.url, registry.tokens["write"])
    by_testid(page, "bento-bento", name="iris").wait_for()
    assert by_testid(page, "bento-registry-error").count() == 0


def test_a_dead_kernel_reads_as_a_message_in_the_panel(page: Any, lab: SidebarLab):
    by_testid(page, "bento-kernel", status="idle").wait_for(timeout=60_000)
    (session,) = [s for s in lab.api("GET", "api/sessions").json() if s["path"] == NOTEBOOK]
    assert lab.api("DELETE", f"api/kernels/{session['kernel']['id']}").status_code == 204
    problem = by_testid(page, "bento-kernel-problem", kind="error")
    problem.filter(has_text=NOTEBOOK).wait_for(timeout=60_000)
    assert "kernel" in problem.inner_text()
    assert by_testid(page, "bento-service").count() == 0
    screenshot(page, "9-kernel-dead")
    requests.get(lab.url, timeout=5)  # the server itself lives on
