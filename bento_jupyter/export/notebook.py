"""Headless export: run a notebook file in a fresh kernel in capture mode, publish its bundles."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
from jupyter_client.kernelspec import NoSuchKernel
from nbclient.exceptions import CellControlSignal, CellExecutionError, DeadKernelError

from bento_jupyter.atomic import check_target, staged_directory
from bento_jupyter.bento.manifest import file_sha256
from bento_jupyter.errors import ExportError
from bento_jupyter.export.capture_mode import CaptureMode
from bento_jupyter.export.index import write_index
from bento_jupyter.export.notebook_runner import CellIdNotebookClient
from bento_jupyter.export.parameters import inject_parameters

EXECUTED_NAME = "notebook.ipynb"


@dataclass(frozen=True)
class ExportResult:
    """What an export published: the directory, one bundle per service, and the executed notebook."""

    directory: Path
    bundles: list[Path]
    notebook: Any


def _failure(index: int, cell: Any, exc: BaseException) -> ExportError:
    first_line = next((line for line in cell.source.splitlines() if line.strip()), "")[:80]
    if isinstance(exc, CellExecutionError):
        what = f"{exc.ename}: {exc.evalue}"
    else:
        what = f"{type(exc).__name__}: {exc}".splitlines()[0]
    return ExportError(f"cell {index} (id {cell.get('id', '?')}, {first_line!r}) failed: {what}; nothing was exported")


def _execute(nb: Any, notebook: Path, capture: CaptureMode, kernel_name: str | None, timeout: int) -> None:
    name = kernel_name or nb.metadata.get("kernelspec", {}).get("name") or "python3"
    client = CellIdNotebookClient(
        nb, timeout=timeout, kernel_name=name, resources={"metadata": {"path": str(notebook.parent)}}
    )
    env = {**os.environ, **capture.to_environment(), "JPY_SESSION_NAME": str(notebook)}
    try:
        with client.setup_kernel(env=env):
            for index, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                try:
                    client.execute_cell(cell, index)
                except (CellControlSignal, DeadKernelError) as exc:
                    raise _failure(index, cell, exc) from None
    except NoSuchKernel:
        raise ExportError(f"no Jupyter kernel named {name!r}: pass --kernel (see jupyter kernelspec list)") from None


def export_notebook(
    notebook: Path,
    out: Path,
    parameters: dict[str, Any] | None = None,
    *,
    force: bool = False,
    kernel_name: str | None = None,
    timeout: int = 600,
    sign_key: Path | None = None,
) -> ExportResult:
    """Execute ``notebook`` headlessly; publish ``out/NAME/`` for each ``%%bento serve`` cell, or nothing.

    With ``sign_key`` (an EC private key), each bundle is signed before the export is published."""
    notebook = notebook.resolve()
    out = out.absolute()  # the kernel runs in the notebook's folder: relative paths are the caller's
    check_target(out, force)  # fail before spending a kernel run
    if sign_key is not None:
        from bento_jupyter.bento.signing import signing_config

        signing_config(sign_key)
    try:
        nb = nbformat.read(notebook, as_version=4)
    except (OSError, ValueError) as exc:
        raise ExportError(f"cannot read notebook {notebook}: {exc}") from None
    parameters = dict(parameters or {})
    inject_parameters(nb, parameters)
    digest = file_sha256(notebook)
    with staged_directory(out, force) as work:
        capture = CaptureMode(work, {"parameters": parameters, "executed_by": "bento-jupyter export"})
        _execute(nb, notebook, capture, kernel_name, timeout)
        names = write_index(work, {"notebook_path": str(notebook), "notebook_sha256": digest, "parameters": parameters})
        if not names:
            raise ExportError(f"{notebook.name} ran, but no %%bento serve cell did: nothing to export")
        nbformat.write(nb, work / EXECUTED_NAME)
        if sign_key is not None:
            from bento_jupyter.bento.signing import sign_bento

            for name in names:
                sign_bento(work / name, sign_key)
    return ExportResult(out, [out / name for name in names], nb)
