"""The JupyterLab the sidebar's browser tests drive: the labserver tests' server, plus user settings and a page URL."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.labserver.jupyter_process import JupyterServer

PLUGIN = "bento-jupyter-labextension"
NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


@dataclass
class SidebarLab(JupyterServer):
    """``jupyter lab`` whose user settings the test writes (the page reads them when it loads)."""

    app: str = "lab"
    commit: str | None = None  # the root's git commit, when the test makes one

    @property
    def settings_dir(self) -> Path:
        return Path(self.process_env()["JUPYTERLAB_SETTINGS_DIR"])

    def write_settings(self, package: str, plugin: str, values: dict[str, Any]) -> None:
        """User settings as the settings editor saves them."""
        folder = self.settings_dir / package
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{plugin}.jupyterlab-settings").write_text(json.dumps(values))

    def set_registry(self, url: str, token: str) -> None:
        self.write_settings(PLUGIN, "plugin", {"registryUrl": url, "registryToken": token})

    def copy_notebook(self, name: str) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copy(NOTEBOOKS / name, self.root / name))

    def page_url(self, path: str) -> str:
        return f"{self.url}{path}?token={self.token}"
