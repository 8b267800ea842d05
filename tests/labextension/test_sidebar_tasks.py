"""The sidebar's task list in a real JupyterLab, driven in Debian's Chromium: a task service's running task is
listed with its status, and its Cancel button stops it in the kernel."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import requests

from tests.labextension.sidebar_lab import SidebarLab
from tests.labextension.ui_steps import RUN_TIMEOUT_MS, by_testid, open_notebook, run_menu, screenshot
from tests.labserver.kernel_calls import JOBS_CELL

pytestmark = pytest.mark.integration
NOTEBOOK = "jobs.ipynb"
CELLS = [
    "%load_ext bento_jupyter",
    JOBS_CELL,
]


def write_notebook(lab: SidebarLab) -> None:
    cells = [
        {"cell_type": "code", "id": f"cell-{i}", "metadata": {}, "source": s, "outputs": [], "execution_count": None}
        for i, s in enumerate(CELLS)
    ]
    notebook = {
        "cells": cells,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    lab.root.mkdir(parents=True, exist_ok=True)
    (lab.root / NOTEBOOK).write_text(json.dumps(notebook))


def test_a_running_task_is_listed_and_cancel_stops_it(page: Any, lab: SidebarLab):
    write_notebook(lab)
    open_notebook(page, lab, NOTEBOOK)
    run_menu(page, "Run All Cells")
    card = by_testid(page, "bento-service", name="jobs")
    card.wait_for(timeout=RUN_TIMEOUT_MS)
    assert card.locator('[data-testid="bento-endpoint"]').all_inner_texts() == ["POST /long_job task"]

    url = card.locator(".jp-bento-muted").first.inner_text().removeprefix("in the kernel: ").strip()
    task_id = requests.post(f"{url}/long_job/submit", json={"seconds": 120}, timeout=10).json()["task_id"]
    row = by_testid(page, "bento-task", **{"task-id": task_id, "status": "in_progress"})
    row.wait_for(timeout=30_000)  # the panel polls the kernel's report
    screenshot(page, "tasks-1-running")
    row.locator('[data-testid="bento-task-cancel"]').click()
    by_testid(page, "bento-task", **{"task-id": task_id, "status": "canceled"}).wait_for(timeout=30_000)
    status = requests.get(f"{url}/long_job/status", params={"task_id": task_id}, timeout=10).json()
    assert status["status"] == "canceled" and status["cancel_requested"] is True
    screenshot(page, "tasks-2-canceled")
    deadline = time.monotonic() + 10
    while by_testid(page, "bento-task-cancel").count():  # a finished task offers no Cancel
        assert time.monotonic() < deadline
        time.sleep(0.1)
