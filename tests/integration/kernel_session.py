"""A notebook executed in a real kernel that stays alive for the test to keep talking to it."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat

from bento_jupyter.export.notebook_runner import CellIdNotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


class KernelSession:
    """Runs cells of one notebook (by index or new source) in a live kernel."""

    def __init__(self, client: CellIdNotebookClient, nb: Any) -> None:
        self.client = client
        self.nb = nb

    def run(self, index: int, source: str | None = None) -> Any:
        cell = self.nb.cells[index]
        if source is not None:
            cell.source = source
        return self.client.execute_cell(cell, index)

    def text_of(self, index: int) -> str:
        parts = []
        for output in self.nb.cells[index].outputs:
            parts.append(output.get("text") or output.get("data", {}).get("text/plain", ""))
        return "".join(parts)

    def evaluate(self, code: str) -> str:
        """Run ``code`` as an extra cell (no id) and return what it printed."""
        cell = nbformat.v4.new_code_cell(code)
        self.nb.cells.append(cell)
        try:
            self.client.execute_cell(cell, len(self.nb.cells) - 1)
            return "".join(o.get("text", "") for o in cell.outputs)
        finally:
            self.nb.cells.pop()

    def cell_index(self, pattern: str) -> int:
        return next(i for i, c in enumerate(self.nb.cells) if re.search(pattern, c.source))


@contextlib.contextmanager
def notebook_in_kernel(name: str, kernel_name: str = "python3", timeout: int = 120) -> Iterator[KernelSession]:
    """Execute every cell of ``notebooks/NAME`` in a fresh kernel; yield while the kernel lives."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = CellIdNotebookClient(
        nb, timeout=timeout, kernel_name=kernel_name, resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    with client.setup_kernel():
        session = KernelSession(client, nb)
        for index, _ in enumerate(nb.cells):
            if nb.cells[index].cell_type == "code":
                session.run(index)
        yield session
