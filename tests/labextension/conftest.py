"""Fixtures for the sidebar's browser tests: a registry, a JupyterLab, and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.labextension.sidebar_lab import SidebarLab
from tests.registry.conftest import RegistryProcess, local_registry

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "labextension"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """Keep each phase's report on the test item, so fixtures can tell a failed test (and keep evidence)."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    """A token-protected registry (SQLite, local blobs) the panel publishes to."""
    with local_registry(tmp_path_factory.mktemp("sidebar-registry")) as process:
        yield process


def _commit_root(root: Path) -> str:
    """Make the Jupyter root a git repository with one commit, so builds record a commit in their lineage."""
    identity = ["-c", "user.name=Sidebar Test", "-c", "user.email=sidebar@example.invalid"]
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], [*identity, "commit", "-q", "-m", "quickstart"]):
        subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, timeout=30)
    done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, check=True, capture_output=True, text=True)
    return done.stdout.strip()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, registry: RegistryProcess) -> Iterator[SidebarLab]:
    """JupyterLab on 127.0.0.1 with the quickstart notebook (committed to git) and the registry configured."""
    if shutil.which("git") is None:
        pytest.skip("git is needed to record a commit in the lineage")
    server = SidebarLab(tmp_path_factory.mktemp("sidebar-lab"))
    server.copy_notebook("quickstart.ipynb")
    server.commit = _commit_root(server.root)
    server.set_registry(registry.url, registry.tokens["write"])
    # No news toasts over the panel in screenshots.
    server.write_settings("@jupyterlab/apputils-extension", "notification", {"fetchNews": "false"})
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def page(lab: SidebarLab) -> Iterator[Any]:
    """One Chromium page for the module's scenario (the tests run in order, each building on the last)."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is missing: .ci/install apt-installs it")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is a test dependency")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            tab = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            tab.set_default_timeout(30_000)
            yield tab
        finally:
            browser.close()


@pytest.fixture(autouse=True)
def evidence_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    """On a failed browser test: a screenshot of the whole page and the JupyterLab log tail."""
    yield
    report = getattr(request.node, "report_call", None)
    if report is None or not report.failed or "page" not in request.fixturenames:
        return
    path = ARTIFACTS / f"FAILED-{request.node.name}.png"
    request.getfixturevalue("page").screenshot(path=str(path))
    print(f"screenshot: {path}\njupyter lab log:\n{request.getfixturevalue('lab').log_tail()}")
