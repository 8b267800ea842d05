"""The notebook's executed cells as Python source: parsed latest first, one definition's lines (with the
decorators that are not run again commented out), the names a definition reads and binds."""

from __future__ import annotations

import ast
import inspect
import textwrap
from typing import Any

from bento_jupyter.capture.cells import CellLog, ExecutedCell


def names_read(nodes: list[ast.AST]) -> set[str]:
    """Names read by ``nodes``, less those they bind themselves (a class body's own attributes)."""
    names = [n for node in nodes for n in ast.walk(node) if isinstance(n, ast.Name)]
    return {n.id for n in names if isinstance(n.ctx, ast.Load)} - {n.id for n in names if isinstance(n.ctx, ast.Store)}


def signature_nodes(node: ast.AST) -> list[ast.AST]:
    """Decorators, annotations, defaults, bases and class-body statements: evaluated when the definition runs."""
    if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return []
    nodes: list[ast.AST] = list(node.decorator_list)
    if isinstance(node, ast.ClassDef):
        nodes += node.bases + [k.value for k in node.keywords]
        nodes += [s for s in node.body if not isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef)]
        for item in node.body:
            nodes += signature_nodes(item)
        return nodes
    args = node.args
    nodes += [a.annotation for a in args.args + args.kwonlyargs + args.posonlyargs if a.annotation]
    nodes += [d for d in args.defaults + args.kw_defaults if d is not None]
    if node.returns:
        nodes.append(node.returns)
    return nodes


def cell_body(cell: ExecutedCell) -> str:
    """Python source of a cell: a leading ``%%`` line is dropped, line magics are commented out."""
    lines = cell.source.splitlines()
    if lines and lines[0].startswith("%%"):
        lines = lines[1:]
    return "\n".join(f"# {line}" if line.lstrip().startswith(("%", "!")) else line for line in lines)


def parsed_cells(cell_log: CellLog) -> list[tuple[ExecutedCell, ast.Module, str]]:
    """The executed cells that parse as Python, latest first."""
    parsed = []
    for cell in reversed(cell_log.cells):
        body = cell_body(cell)
        try:
            parsed.append((cell, ast.parse(body), body))
        except SyntaxError:
            continue
    return parsed


def live_source(value: Any) -> str | None:
    """The source the live object was compiled from, when Python can still find it."""
    try:
        return textwrap.dedent(inspect.getsource(value))
    except (OSError, TypeError):
        return None


def definition_source(node: ast.stmt, body: str) -> str:
    start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    lines = body.splitlines()[start - 1 : node.end_lineno]
    return textwrap.dedent("\n".join(lines))


def without_decorators(source: str, indexes: list[int]) -> str:
    """``source`` of one definition with the decorators at ``indexes`` commented out (not run again)."""
    if not indexes:
        return source
    lines = source.splitlines()
    definition = ast.parse(source).body[0]
    assert isinstance(definition, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    decorators = definition.decorator_list
    first = min(decorators[i].lineno for i in indexes) - 1
    for i in indexes:
        for line in range(decorators[i].lineno - 1, decorators[i].end_lineno or decorators[i].lineno):
            lines[line] = f"# {lines[line]}"
    lines.insert(first, "# ran in the notebook, returning the definition itself: what it registered is held as served")
    return "\n".join(lines)


def binds(node: ast.AST, name: str) -> bool:
    """Whether a top-level statement binds ``name`` in the module scope."""
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return node.name == name
    if isinstance(node, ast.Import | ast.ImportFrom):
        return any((a.asname or a.name.split(".")[0]) == name for a in node.names)
    if isinstance(node, ast.Name):
        return node.id == name and isinstance(node.ctx, ast.Store)
    if isinstance(node, ast.Lambda):
        return False
    return any(binds(child, name) for child in ast.iter_child_nodes(node))
