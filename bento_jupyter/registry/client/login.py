"""Which registry to talk to and with what token: ``$BENTO_JUPYTER_HOME/config.json`` (mode 0600)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from bento_jupyter.atomic import write_file
from bento_jupyter.paths import home
from bento_jupyter.registry.errors import InvalidRequest

URL_ENV = "BENTO_JUPYTER_REGISTRY_URL"
TOKEN_ENV = "BENTO_JUPYTER_REGISTRY_TOKEN"


def config_path() -> Path:
    return home() / "config.json"


def read_config() -> dict[str, Any]:
    try:
        value = json.loads(config_path().read_text())
    except FileNotFoundError:
        return {}
    except ValueError as exc:
        raise InvalidRequest(f"{config_path()} is not valid JSON: {exc}") from None
    return value if isinstance(value, dict) else {}


def save_login(url: str, token: str | None) -> Path:
    """Remember ``url`` and ``token``, keeping any other settings; the file is private to its owner."""
    if not url.startswith(("http://", "https://")):
        raise InvalidRequest(f"invalid registry URL {url!r}: use http(s)://HOST[:PORT]")
    config = read_config()
    config["registry"] = {"url": url.rstrip("/"), "token": token}
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_file(path, json.dumps(config, indent=2).encode())  # 0600: it holds a token
    return path


def _same_registry(a: str | None, b: str | None) -> bool:
    return bool(a and b) and (a or "").rstrip("/") == (b or "").rstrip("/")


def resolve_login(url: str | None = None, token: str | None = None) -> tuple[str, str | None]:
    """Explicit arguments first, then the environment, then ``login``'s saved values.

    A token that was not passed explicitly goes only to the registry it was configured for:
    ``$BENTO_JUPYTER_REGISTRY_TOKEN`` to ``$BENTO_JUPYTER_REGISTRY_URL`` (or, without it, to the saved
    login's URL), a saved token to its saved URL; any other URL gets no token.
    """
    saved = read_config().get("registry") or {}
    env_url = os.environ.get(URL_ENV)
    url = url or env_url or saved.get("url")
    if not url:
        raise InvalidRequest("no registry configured: bento-jupyter login URL --token TOKEN (or pass --url)")
    if token is None:
        env_token = os.environ.get(TOKEN_ENV)
        if env_token and _same_registry(url, env_url or saved.get("url")):
            token = env_token
        elif _same_registry(url, saved.get("url")):
            token = saved.get("token")
    return url.rstrip("/"), token
