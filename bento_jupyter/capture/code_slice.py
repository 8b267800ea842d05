"""What capture produces: a slice of the notebook (imports, definitions, constants, objects to store) and its
rendering as the bento's one source module."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bento_jupyter.capture import pickling
from bento_jupyter.capture.cells import ExecutedCell
from bento_jupyter.capture.served_state import STATE_OBJECT, Patch


@dataclass
class Definition:
    """A function or class defined at the top of a notebook cell, re-created in the bento from its source."""

    name: str
    source: str
    cell: ExecutedCell | None
    order: tuple[int, int]
    value: Any
    aliases: list[str] = field(default_factory=list)  # other names bound to the same object
    patches: list[str] = field(default_factory=list)  # state it got after it ran, as assignments of literals


@dataclass
class CodeSlice:
    """The captured dependency slice of a set of handlers."""

    imports: dict[str, str] = field(default_factory=dict)  # bound name -> import statement
    definitions: dict[str, Definition] = field(default_factory=dict)
    constants: dict[str, str] = field(default_factory=dict)  # name -> literal source
    objects: dict[str, Any] = field(default_factory=dict)  # name -> object to store
    origins: dict[str, ExecutedCell | None] = field(default_factory=dict)  # object name -> cell binding it
    modules: set[str] = field(default_factory=set)  # top-level modules the code needs
    state: list[Patch] = field(default_factory=list)  # served state that is no literal: stored, set on load

    @property
    def cells(self) -> list[ExecutedCell]:
        unique = {d.cell.sequence: d.cell for d in self.definitions.values() if d.cell}
        return [unique[k] for k in sorted(unique)]

    def references(self) -> pickling.References:
        """The bento's source definitions, by identity, for stored objects to refer to by name."""
        references = pickling.References()
        for definition in self.definitions.values():
            for name in (definition.name, *definition.aliases):
                references.add(name, definition.value)
        return references

    def render(self, header: str) -> str:
        """The slice as one Python module."""
        lines = [f'"""{header}"""', ""]
        lines += sorted(self.imports.values())
        if self.constants:
            lines.append("")
            lines += [f"{name} = {literal}" for name, literal in sorted(self.constants.items())]
        for definition in sorted(self.definitions.values(), key=lambda d: d.order):
            lines += ["", "", f"# from {describe_cell(definition.cell)}", definition.source.rstrip()]
            lines += [f"{alias} = {definition.name}" for alias in definition.aliases]
            lines += definition.patches
        return "\n".join(lines) + "\n"

    def origin_cells(self) -> dict[str, str]:
        """Each stored object's cell, as messages name it."""
        return {name: describe_cell(cell) for name, cell in self.origins.items()}

    def stored_objects(self) -> dict[str, Any]:
        """The objects to store, with the served state that is no literal (set on the definitions when loaded)."""
        if not self.state:
            return self.objects
        return {**self.objects, STATE_OBJECT: [(p.path, p.key, p.value) for p in self.state]}


def describe_cell(cell: ExecutedCell | None) -> str:
    """``cell ID (execution N)``, as users see it in messages and in the generated source."""
    if cell is None:
        return "the notebook session"
    return f"cell {cell.cell_id or '?'} (execution {cell.execution_count})"
