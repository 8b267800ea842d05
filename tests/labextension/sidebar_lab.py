"""The JupyterLab the sidebar's browser tests drive: the labserver tests' server, plus user settings and a page URL."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from tests.labserver.jupyter_process import JupyterServer

PLUGIN = "bento-jupyter-labextension"
REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
BUILD = REPO / "bento_jupyter" / "labextension"  # `cd labextension && npm run build` writes it


@dataclass
class SidebarLab(JupyterServer):
    """``jupyter lab`` whose user settings the test writes (the page reads them when it loads)."""

    app: str = "lab"
    commit: str | None = None  # the root's git commit, when the test makes one

    def process_env(self) -> dict[str, str]:
        """The server's environment; when this checkout holds a labextension build, JupyterLab loads that one
        (a data directory placed first on ``JUPYTER_PATH`` wins over the installed copy)."""
        env = super().process_env()
        if (BUILD / "package.json").exists():
            link = self.base / "jupyter-path" / "labextensions" / PLUGIN
            if not link.exists():
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(BUILD, target_is_directory=True)
            env["JUPYTER_PATH"] = os.pathsep.join(
                p for p in (str(self.base / "jupyter-path"), env.get("JUPYTER_PATH")) if p
            )
        return env

    def copy_notebook(self, name: str) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copy(NOTEBOOKS / name, self.root / name))

    def page_url(self, path: str) -> str:
        return f"{self.url}{path}?token={self.token}"
