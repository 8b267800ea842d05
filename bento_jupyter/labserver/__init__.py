"""The jupyter_server extension behind the JupyterLab Bento sidebar: REST routes under
``{base_url}bento-jupyter/api/`` (enabled on install by ``jupyter_server_config.d/bento_jupyter.json``)."""

from __future__ import annotations

from typing import Any

from bento_jupyter.labserver.handlers import API_PATH, routes


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "bento_jupyter.labserver"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    web_app = serverapp.web_app
    web_app.add_handlers(".*$", routes(web_app.settings["base_url"], serverapp.root_dir))
    serverapp.log.info("bento_jupyter: sidebar API at %s%s/", web_app.settings["base_url"], API_PATH)
