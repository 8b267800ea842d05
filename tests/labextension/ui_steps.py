"""Steps a user takes in JupyterLab and Swagger UI, shared by the browser tests."""

from __future__ import annotations

from typing import Any

from tests.labextension.conftest import ARTIFACTS
from tests.labextension.sidebar_lab import SidebarLab

NOTEBOOK = "quickstart.ipynb"
RUN_TIMEOUT_MS = 180_000


def by_testid(page: Any, testid: str, **data: str) -> Any:
    selector = f'[data-testid="{testid}"]' + "".join(f'[data-{k}="{v}"]' for k, v in data.items())
    return page.locator(selector)


def screenshot(page: Any, name: str) -> None:
    """The whole window as the user sees it, kept under test-artifacts/."""
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    print(f"screenshot: {path}")


def open_sidebar(page: Any) -> None:
    """Show the panel (the layout restorer may already have: wait for it to finish first)."""
    tab = page.locator('.jp-SideBar li[data-id="bento-jupyter-sidebar"]')
    tab.wait_for()
    page.locator("#jupyterlab-splash").wait_for(state="detached", timeout=60_000)
    if not by_testid(page, "bento-sidebar").is_visible():
        tab.click()
    by_testid(page, "bento-sidebar").wait_for()


def open_notebook(page: Any, lab: SidebarLab, notebook: str = NOTEBOOK) -> None:
    """Open ``notebook`` in JupyterLab with the Bento sidebar showing, once its kernel is idle."""
    page.goto(lab.page_url(f"lab/tree/{notebook}"))
    open_sidebar(page)
    by_testid(page, "bento-kernel", status="idle").wait_for(timeout=60_000)


def run_menu(page: Any, item: str) -> None:
    page.locator(".lm-MenuBar-itemLabel").get_by_text("Run", exact=True).click()
    page.locator(".lm-Menu-itemLabel").get_by_text(item, exact=True).click()


def try_it_out(tab: Any, url: str) -> str:
    """Open Swagger UI at ``url``, expand POST /predict, "Try it out", "Execute" the pre-filled body; the status."""
    tab.goto(url)
    operation = tab.locator("#operations-default-predict")
    operation.locator(".opblock-summary-control").click()
    operation.get_by_role("button", name="Try it out").click()
    operation.get_by_role("button", name="Execute").click()
    status = operation.locator(".live-responses-table tr.response .response-col_status").first
    status.wait_for()
    return status.inner_text().strip()
