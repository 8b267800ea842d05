"""The cells this kernel executed: ids, execution counts and sources, for service keys and lineage."""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ExecutedCell:
    """One cell execution, as the kernel saw it."""

    cell_id: str | None
    execution_count: int
    source: str
    sequence: int  # position in this kernel's execution history
    completed: bool = False  # ran to its end without raising (False while it runs)

    @property
    def source_sha256(self) -> str:
        return hashlib.sha256(self.source.encode()).hexdigest()


class CellLog:
    """Filled by IPython's ``pre_run_cell`` event (the last entry is the cell running now) and completed by
    ``post_run_cell`` with the execution count IPython gave the cell and whether it raised."""

    def __init__(self) -> None:
        self.cells: list[ExecutedCell] = []
        self._running: Any = None  # the ExecutionInfo of the last recorded cell until it finishes
        self._count_offset = 0  # how far the shell's counter runs ahead of a cell's own count in pre_run_cell

    def record(self, info: Any, shell_count: int) -> None:
        """A cell starts; ``shell_count`` is the shell's execution counter now (IPython 9 has already
        advanced it past this cell's count, IPython 8 has not: the first finished cell tells which)."""
        count = shell_count - self._count_offset
        self.cells.append(ExecutedCell(getattr(info, "cell_id", None), count, info.raw_cell or "", len(self.cells)))
        self._running = info

    def finish(self, result: Any) -> None:
        """The cell recorded last has ended: keep its own execution count and whether it completed."""
        if not self.cells or self._running is None or result.info is not self._running:
            return
        self._running = None
        cell = self.cells[-1]
        count = result.execution_count if isinstance(result.execution_count, int) else cell.execution_count
        self._count_offset += cell.execution_count - count
        self.cells[-1] = dataclasses.replace(cell, execution_count=count, completed=bool(result.success))

    @property
    def current(self) -> ExecutedCell | None:
        return self.cells[-1] if self.cells else None
