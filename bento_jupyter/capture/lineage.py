"""Where a build came from: notebook, kernel session, cells, git state, machine, time and user.

Each provider adds one part and never fails the build: what cannot be known is left out.
"""

from __future__ import annotations

import getpass
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bento_jupyter.capture.cells import ExecutedCell

Provider = Callable[["LineageContext"], dict[str, Any]]


class LineageContext:
    """What the providers may look at."""

    def __init__(self, cells: list[ExecutedCell], notebook_path: str | None, kernel_id: str | None) -> None:
        self.cells = cells
        self.notebook_path = notebook_path
        self.kernel_id = kernel_id


def notebook_path_from_environment() -> str | None:
    """The notebook this kernel serves: JupyterLab sets ``JPY_SESSION_NAME`` for its kernels."""
    return os.environ.get("JPY_SESSION_NAME") or None


def kernel_id() -> str | None:
    """The Jupyter kernel id, read from this kernel's connection file name (None outside one)."""
    try:
        from ipykernel import get_connection_file

        name = Path(get_connection_file()).stem
    except Exception:  # not running inside an ipykernel
        return None
    return name.removeprefix("kernel-")


def _notebook(ctx: LineageContext) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if ctx.notebook_path:
        found["notebook_path"] = ctx.notebook_path
    if ctx.kernel_id:
        found["kernel_id"] = ctx.kernel_id
    return found


def _cells(ctx: LineageContext) -> dict[str, Any]:
    return {
        "cells": [
            {
                "cell_id": cell.cell_id,
                "execution_count": cell.execution_count,
                "source_sha256": cell.source_sha256,
                "source": cell.source,
            }
            for cell in ctx.cells
        ]
    }


def _git(ctx: LineageContext) -> dict[str, Any]:
    where = Path(ctx.notebook_path).resolve().parent if ctx.notebook_path else Path.cwd()

    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(where), *args], capture_output=True, text=True, timeout=10, check=True)
        return done.stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
    except (OSError, subprocess.SubprocessError):
        return {}
    return {
        "git": {
            "commit": commit,
            "branch": git("rev-parse", "--abbrev-ref", "HEAD"),
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        }
    }


def _environment(_: LineageContext) -> dict[str, Any]:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "executable": sys.executable,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "built_by": user,
    }


PROVIDERS: list[Provider] = [_notebook, _cells, _git, _environment]


def collect_lineage(ctx: LineageContext) -> dict[str, Any]:
    lineage: dict[str, Any] = {}
    for provider in PROVIDERS:
        lineage.update(provider(ctx))
    return lineage
