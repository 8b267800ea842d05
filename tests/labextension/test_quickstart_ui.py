"""The whole quickstart as a user does it in JupyterLab (Debian's Chromium): Run All, watch the panels, try the API
in Swagger from the cell's link, Build and Push from the sidebar, Stop from the cell. One test, one window; each
step leaves a full-window screenshot under test-artifacts/labextension/quickstart-*.png."""

from __future__ import annotations

from typing import Any

import pytest

from bento_jupyter.bento.local_store import Store
from tests.labextension.sidebar_lab import SidebarLab
from tests.labextension.ui_steps import (
    RUN_TIMEOUT_MS,
    by_testid,
    open_notebook,
    run_menu,
    screenshot,
    try_it_out,
)
from tests.registry.conftest import RegistryProcess

pytestmark = pytest.mark.integration


def test_the_quickstart_through_the_ui(page: Any, lab: SidebarLab, registry: RegistryProcess):
    open_notebook(page, lab)
    screenshot(page, "quickstart-1-opened")

    run_menu(page, "Run All Cells")
    card = by_testid(page, "bento-service", name="iris")
    card.wait_for(timeout=RUN_TIMEOUT_MS)
    cell_panel = by_testid(page, "bento-cell-panel", name="iris", state="running")
    cell_panel.wait_for(timeout=RUN_TIMEOUT_MS)
    page.wait_for_function(
        "() => Number(/(\\d+) total/.exec(document.querySelector('[data-testid=bento-cell-stats]').innerText)?.[1])"
        " >= 200"
    )
    by_testid(page, "bento-kernel", status="idle").wait_for(timeout=RUN_TIMEOUT_MS)
    cell_panel.scroll_into_view_if_needed()
    screenshot(page, "quickstart-2-served")

    with page.context.expect_page() as opened:
        cell_panel.locator('[data-testid="bento-cell-docs"]').click()  # the cell's link, through the proxy
    swagger = opened.value
    try:
        assert try_it_out(swagger, swagger.url) == "200"
        screenshot(swagger, "quickstart-3-swagger")
    finally:
        swagger.close()

    card.locator('[data-testid="bento-build"]').click()
    card.locator('[data-testid="bento-service-message"]').filter(has_text="built bento iris:1").wait_for(
        timeout=RUN_TIMEOUT_MS
    )
    assert [item.tag for item in Store("bentos", lab.home).list()] == ["iris:1"]
    screenshot(page, "quickstart-4-built")

    by_testid(page, "bento-push", tag="iris:1").click()
    by_testid(page, "bento-push-message").filter(has_text="Pushed iris:1").wait_for(timeout=RUN_TIMEOUT_MS)
    assert registry.api("GET", "/bentos/iris/versions/1", scope="read").status_code == 200
    screenshot(page, "quickstart-5-pushed")

    cell_panel.locator('[data-testid="bento-cell-stop"]').click()
    by_testid(page, "bento-cell-panel", name="iris", state="stopped").wait_for(timeout=10_000)
    card.wait_for(state="detached", timeout=10_000)
    by_testid(page, "bento-services").filter(has_text="No services in this kernel").wait_for()
    screenshot(page, "quickstart-6-stopped")
