"""``%bento export``: the services this kernel serves, captured from its live state into bundles."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bento_jupyter.cell_log import CellLog
from bento_jupyter.errors import ExportError
from bento_jupyter.export.capture import notebook_lineage, write_bundle
from bento_jupyter.export.directory import staged_directory, write_index
from bento_jupyter.kernel_actions import notebook_path
from bento_jupyter.server.services import services


def default_output(shell: Any) -> Path:
    """``dist/NOTEBOOK`` beside the kernel's working directory (``dist/export`` when the notebook is unknown)."""
    notebook = notebook_path(shell)
    return Path("dist") / (Path(notebook).stem if notebook else "export")


def export_running_services(
    shell: Any, cell_log: CellLog, out: Path, names: list[str] | None = None, force: bool = False
) -> list[str]:
    """Write ``out/NAME/`` for each running service (or those named); all of them or none."""
    running = {service.name: service for service in services.list()}
    if not running:
        raise ExportError("no service is running: run a %%bento serve cell first")
    unknown = sorted(set(names or []) - set(running))
    if unknown:
        raise ExportError(f"no running service named {unknown[0]!r}; running: {', '.join(sorted(running))}")
    chosen = [running[name] for name in (names or sorted(running))]
    notebook = notebook_path(shell)
    with staged_directory(out, force) as work:
        for service in chosen:
            write_bundle(work, service, shell, cell_log, {"executed_by": "%bento export"})
        written = write_index(work, {**notebook_lineage(notebook), "parameters": {}})
    return written
