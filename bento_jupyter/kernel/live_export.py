"""``%bento export`` and capture mode, kernel side: the services this kernel serves, captured from its live state
into bundles (bento directories)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from bento_jupyter.atomic import staged_directory
from bento_jupyter.bento.build import write_bento
from bento_jupyter.capture.cells import CellLog
from bento_jupyter.errors import ExportError
from bento_jupyter.export.capture_mode import notebook_lineage
from bento_jupyter.export.index import write_index
from bento_jupyter.kernel.actions import capture_service, notebook_path
from bento_jupyter.server.replay import build_check
from bento_jupyter.server.running import RunningService, services
from bento_jupyter.server.samples import collect


def write_bundle(
    directory: Path, service: RunningService, shell: Any, cell_log: CellLog, extra_lineage: dict[str, Any]
) -> Path:
    """Capture ``service`` from the kernel's namespace into ``directory/NAME`` (replacing an older one),
    verified as ``%bento build`` verifies: its samples and examples replayed in a fresh process."""
    definition = service.definition
    code, lineage = capture_service(shell, cell_log, definition)
    lineage["export"] = {**notebook_lineage(notebook_path(shell)), **extra_lineage}
    root = directory / definition.name
    if root.exists():  # the serving cell ran again: its latest run wins
        shutil.rmtree(root)
    root.mkdir(parents=True)
    write_bento(root, definition, code, lineage, [], collect(service.app.endpoints), build_check, service.settings)
    return root


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
