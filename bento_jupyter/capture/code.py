"""Find everything handlers reach and slice it into readable source plus objects to store.

Starting from the handlers, follow the global names their code uses (recursively through
notebook-defined helpers and classes). Modules become imports, notebook definitions become
source taken from the cells that defined them, literal constants become assignments, and every
other object (models, arrays, fitted estimators) is handed over for storage.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from bento_jupyter.cell_log import CellLog, ExecutedCell
from bento_jupyter.errors import CaptureError

_MAX_LITERAL_BYTES = 64 * 1024
_NOTEBOOK_MODULE = "__main__"


@dataclass(frozen=True)
class Definition:
    """A function or class defined in the notebook, with the cell it came from."""

    name: str
    source: str
    cell: ExecutedCell | None
    order: tuple[int, int]


@dataclass
class CodeSlice:
    """The captured dependency slice of a set of handlers."""

    imports: dict[str, str] = field(default_factory=dict)  # bound name -> import statement
    definitions: dict[str, Definition] = field(default_factory=dict)
    constants: dict[str, str] = field(default_factory=dict)  # name -> literal source
    objects: dict[str, Any] = field(default_factory=dict)  # name -> object to store
    modules: set[str] = field(default_factory=set)  # top-level modules the code needs

    @property
    def cells(self) -> list[ExecutedCell]:
        unique = {d.cell.sequence: d.cell for d in self.definitions.values() if d.cell}
        return [unique[k] for k in sorted(unique)]

    def render(self, header: str) -> str:
        """The slice as one Python module."""
        lines = [f'"""{header}"""', ""]
        lines += sorted(self.imports.values())
        if self.constants:
            lines.append("")
            lines += [f"{name} = {literal}" for name, literal in sorted(self.constants.items())]
        for definition in sorted(self.definitions.values(), key=lambda d: d.order):
            origin = (
                f"# from cell {definition.cell.cell_id or '?'} (execution {definition.cell.execution_count})"
                if definition.cell
                else "# from the notebook session"
            )
            lines += ["", "", origin, definition.source.rstrip()]
        return "\n".join(lines) + "\n"


def _code_objects(code: types.CodeType) -> Iterator[types.CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_objects(const)


def _ast_names(nodes: list[ast.AST]) -> set[str]:
    return {n.id for node in nodes for n in ast.walk(node) if isinstance(n, ast.Name)}


def _signature_nodes(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> list[ast.AST]:
    """Decorators, annotations, defaults and bases: evaluated when the definition runs."""
    nodes: list[ast.AST] = list(node.decorator_list)
    if isinstance(node, ast.ClassDef):
        nodes += node.bases + [k.value for k in node.keywords]
        nodes += [s for s in node.body if not isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef)]
        for item in node.body:
            if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                nodes += _signature_nodes(item)
        return nodes
    args = node.args
    nodes += [a.annotation for a in args.args + args.kwonlyargs + args.posonlyargs if a.annotation]
    nodes += [d for d in args.defaults + args.kw_defaults if d is not None]
    if node.returns:
        nodes.append(node.returns)
    return nodes


def _cell_body(cell: ExecutedCell) -> str:
    """Python source of a cell: a leading ``%%`` line is dropped, line magics are commented out."""
    lines = cell.source.splitlines()
    if lines and lines[0].startswith("%%"):
        lines = lines[1:]
    return "\n".join(f"# {line}" if line.lstrip().startswith(("%", "!")) else line for line in lines)


def _live_source(value: Any) -> str | None:
    """The source the live object was compiled from, when Python can still find it."""
    try:
        return textwrap.dedent(inspect.getsource(value))
    except (OSError, TypeError):
        return None


def _find_in_cells(value: Any, cell_log: CellLog) -> tuple[ExecutedCell, ast.AST, str] | None:
    """The latest executed cell defining ``value`` at top level, with its node and source.

    When the object's own source is known, only a cell holding that exact definition matches:
    a later cell redefining the same name must not stand in for the object actually served.
    """
    live = _live_source(value)
    for cell in reversed(cell_log.cells):
        body = _cell_body(cell)
        try:
            tree = ast.parse(body)
        except SyntaxError:
            continue
        for node in tree.body:
            defines = isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            if (
                defines
                and node.name == value.__name__
                and (live is None or _definition_source(node, body).strip() == live.strip())
            ):
                return cell, node, body
    return None


def _definition_source(node: ast.AST, body: str) -> str:
    start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    lines = body.splitlines()[start - 1 : node.end_lineno]
    return textwrap.dedent("\n".join(lines))


def _literal(value: Any) -> str | None:
    """Source for a plain constant, or None when ``value`` is not one."""
    if isinstance(value, bool | int | float | str | bytes | type(None) | tuple | list | dict | set | frozenset):
        text = repr(value)
        if len(text) <= _MAX_LITERAL_BYTES:
            try:
                if ast.literal_eval(text) == value:
                    return text
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                return None
    return None


class _Walker:
    def __init__(self, namespace: dict[str, Any], cell_log: CellLog) -> None:
        self.namespace = namespace
        self.cell_log = cell_log
        self.slice = CodeSlice()
        self._seen: set[str] = set()

    def visit_names(self, names: set[str]) -> None:
        for name in sorted(names):
            if name in self._seen or name not in self.namespace:
                continue
            self._seen.add(name)
            self.visit(name, self.namespace[name])

    def visit(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType):
            module = value.__name__
            self.slice.modules.add(module.split(".")[0])
            top = module.split(".")[0]
            self.slice.imports[name] = (
                f"import {module}"
                if name == module or (name == top and "." in module)
                else f"import {module} as {name}"
            )
            return
        if inspect.isfunction(value) or inspect.isclass(value):
            if getattr(value, "__module__", None) == _NOTEBOOK_MODULE:
                self._visit_definition(name, value)
            else:
                self._import_from_module(name, value)
            return
        literal = _literal(value)
        if literal is not None:
            self.slice.constants[name] = literal
            return
        self.slice.objects[name] = value
        kind = type(value)
        if kind.__module__ == _NOTEBOOK_MODULE:  # an instance of a notebook class: keep its source
            self.visit_names({kind.__name__})
        else:
            self.slice.modules.add(kind.__module__.split(".")[0])

    def _import_from_module(self, name: str, value: Any) -> None:
        module, qualname = value.__module__, value.__qualname__
        if module == "builtins":
            return
        self.slice.modules.add(module.split(".")[0])
        statement = f"from {module} import {qualname}"
        self.slice.imports[name] = statement if name == qualname else f"{statement} as {name}"

    def _visit_definition(self, name: str, value: Any) -> None:
        found = _find_in_cells(value, self.cell_log)
        if found is not None:
            cell, node, body = found
            source = _definition_source(node, body)
            order = (cell.sequence, node.lineno)
        else:
            source = _live_source(value)
            if source is None:
                raise CaptureError(f"cannot find the source of {name!r} in the executed cells")
            cell, order = None, (-1, 0)
            node = ast.parse(source).body[0]
        if name != value.__name__:
            source += f"\n{name} = {value.__name__}"
        self.slice.definitions[name] = Definition(name, source, cell, order)
        self.visit_names(_ast_names(_signature_nodes(node)) | self._body_names(value))

    @staticmethod
    def _body_names(value: Any) -> set[str]:
        functions: list[Callable[..., Any]] = []
        if inspect.isfunction(value):
            functions.append(value)
        else:
            for attr in vars(value).values():
                inner = getattr(attr, "__func__", attr)
                if isinstance(attr, property):
                    functions += [f for f in (attr.fget, attr.fset, attr.fdel) if f]
                elif inspect.isfunction(inner):
                    functions.append(inner)
        return {n for f in functions for code in _code_objects(f.__code__) for n in code.co_names}


def capture_handlers(handlers: list[Callable[..., Any]], namespace: dict[str, Any], cell_log: CellLog) -> CodeSlice:
    """The dependency slice of ``handlers`` in ``namespace`` (the notebook's user globals)."""
    walker = _Walker(namespace, cell_log)
    for handler in handlers:
        walker._seen.add(handler.__name__)
        walker.visit(handler.__name__, handler)
    return walker.slice


def capture_object(name: str, value: Any, namespace: dict[str, Any], cell_log: CellLog) -> CodeSlice:
    """The slice needed to rebuild one object: the object itself plus its notebook classes."""
    walker = _Walker(namespace, cell_log)
    walker._seen.add(name)
    walker.visit(name, value)
    return walker.slice
