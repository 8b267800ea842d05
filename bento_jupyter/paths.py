"""Where bento_jupyter keeps its files: ``$BENTO_JUPYTER_HOME``, default ``~/.bento_jupyter``."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """The root of the local store, the registry client's cache and login, and task files."""
    return Path(os.environ.get("BENTO_JUPYTER_HOME", Path.home() / ".bento_jupyter"))
