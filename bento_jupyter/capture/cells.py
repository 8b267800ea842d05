"""The cells this kernel executed: ids, execution counts and sources, for service keys and lineage."""

from __future__ import annotations

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

    @property
    def source_sha256(self) -> str:
        return hashlib.sha256(self.source.encode()).hexdigest()


class CellLog:
    """Filled by IPython's ``pre_run_cell`` event; the last entry is the cell running now."""

    def __init__(self) -> None:
        self.cells: list[ExecutedCell] = []

    def record(self, info: Any, execution_count: int) -> None:
        cell = ExecutedCell(getattr(info, "cell_id", None), execution_count, info.raw_cell or "", len(self.cells))
        self.cells.append(cell)

    @property
    def current(self) -> ExecutedCell | None:
        return self.cells[-1] if self.cells else None
