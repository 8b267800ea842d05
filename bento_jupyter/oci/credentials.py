"""Registry credentials the way ``docker login`` keeps them: ``~/.docker/config.json`` and credential helpers."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bento_jupyter.oci.reference import OCIError

_DOCKER_HUB_KEYS = ("https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io")


@dataclass(frozen=True)
class Credentials:
    """A username and secret for basic auth, or to obtain a bearer token from the registry's token service."""

    username: str
    password: str

    def __repr__(self) -> str:  # never print the secret
        return f"Credentials(username={self.username!r})"


def docker_config_path() -> Path:
    """``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``."""
    return Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker") / "config.json"


def _auth_keys(host: str) -> list[str]:
    keys = [host, f"https://{host}", f"http://{host}", f"https://{host}/v1/", f"https://{host}/v2/"]
    return keys + list(_DOCKER_HUB_KEYS) if host in _DOCKER_HUB_KEYS else keys


def _from_helper(helper: str, host: str) -> Credentials | None:
    program = shutil.which(f"docker-credential-{helper}")
    if program is None:
        raise OCIError(
            f"{docker_config_path()} names credential helper {helper!r}, but docker-credential-{helper} is not on PATH"
        )
    done = subprocess.run([program, "get"], input=host, capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        return None  # the helper holds nothing for this host
    answer = json.loads(done.stdout)
    return Credentials(answer["Username"], answer["Secret"])


def _from_entry(entry: dict, path: Path) -> Credentials | None:
    if entry.get("auth"):
        try:
            username, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
        except ValueError:
            raise OCIError(f"{path}: an 'auth' entry is not base64 of USER:PASSWORD") from None
        return Credentials(username, password)
    if entry.get("username") and entry.get("password"):
        return Credentials(entry["username"], entry["password"])
    return None


def docker_credentials(host: str) -> Credentials | None:
    """The credentials ``docker login HOST`` saved (helpers first, as docker does), or None."""
    path = docker_config_path()
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise OCIError(f"{path} is not valid JSON: {exc}") from None
    helper = (config.get("credHelpers") or {}).get(host)
    if helper:
        return _from_helper(helper, host)
    auths = config.get("auths") or {}
    for key in _auth_keys(host):
        if key in auths:
            found = _from_entry(auths[key], path)
            if found is not None:
                return found
    if config.get("credsStore"):
        return _from_helper(config["credsStore"], host)
    return None
