"""The registry the sidebar talks to, read from the user's own JupyterLab settings, never from a request.

JupyterLab saves the Bento settings (``registryUrl``, ``registryToken``) as JSON5 in
``{user_settings_dir}/bento-jupyter-labextension/plugin.jupyterlab-settings``; the server extension reads
that file on every call, so a page (or anything else holding the Jupyter token) cannot point the server
at another URL and have it send a token there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import json5

from bento_jupyter.errors import BentoJupyterError

PLUGIN_FILE = Path("bento-jupyter-labextension", "plugin.jupyterlab-settings")


@dataclass(frozen=True)
class RegistrySettings:
    url: str  # "" means the local store
    token: str | None


def user_settings_dir(serverapp: Any) -> Path:
    """JupyterLab's user settings directory: the running lab app's, else its default
    (``$JUPYTERLAB_SETTINGS_DIR`` or ``{jupyter_config_dir}/lab/user-settings``)."""
    manager = getattr(serverapp, "extension_manager", None)
    for app in getattr(manager, "extension_apps", {}).get("jupyterlab", ()) if manager else ():
        if getattr(app, "user_settings_dir", None):
            return Path(app.user_settings_dir)
    from jupyterlab.commands import get_user_settings_dir

    return Path(get_user_settings_dir())


def read_registry_settings(settings_dir: Path) -> RegistrySettings:
    """The Bento settings the user saved (both empty when there are none)."""
    try:
        values = json5.loads((settings_dir / PLUGIN_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return RegistrySettings("", None)
    except ValueError as exc:
        raise BentoJupyterError(
            f"the Bento settings ({settings_dir / PLUGIN_FILE}) are not valid JSON5: {exc}"
        ) from None
    if not isinstance(values, dict):
        values = {}
    url, token = values.get("registryUrl") or "", values.get("registryToken") or ""
    if not isinstance(url, str) or not isinstance(token, str):
        raise BentoJupyterError("registryUrl and registryToken in Settings > Bento must be text")
    return RegistrySettings(url.strip(), token.strip() or None)
