"""The JupyterLab the sidebar's browser tests drive: the labserver tests' server, plus user settings and a page URL."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from tests.labserver.jupyter_process import JupyterServer

PLUGIN = "bento-jupyter-labextension"
NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


@dataclass
class SidebarLab(JupyterServer):
    """``jupyter lab`` whose user settings the test writes (the page reads them when it loads)."""

    app: str = "lab"
    commit: str | None = None  # the root's git commit, when the test makes one

    def copy_notebook(self, name: str) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copy(NOTEBOOKS / name, self.root / name))

    def page_url(self, path: str) -> str:
        return f"{self.url}{path}?token={self.token}"
