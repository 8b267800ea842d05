"""Names a function reads that its global names do not show: IPython's output history (``_``, ``_3``,
``Out[3]``), lookups by string (``globals()["model"]``, ``eval("model + 1")``) and attributes a cell set on
an imported module (``math.twice = ...``), which a bento's fresh import does not have.

Lookups by a constant string are resolved to the names they read; anything else is reported, so capture can
refuse it in one line instead of building a bento that answers differently.
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
import types
from dataclasses import dataclass, field

HISTORY = re.compile(r"_+|_\d+|_i+|_i\d+|_oh|_ih|_dh|Out|In")
_DYNAMIC = frozenset({"globals", "vars", "eval", "exec"})


@dataclass
class DynamicLookups:
    """What string lookups in a function read: the names resolved, and the first construct that was not."""

    names: set[str] = field(default_factory=set)
    unresolved: str | None = None


def _constant_string(node: ast.expr | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _code_names(text: str, mode: str) -> set[str] | None:
    try:
        tree = ast.parse(text, mode=mode)
    except SyntaxError:
        return None
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}


def _resolve(node: ast.Call, parents: dict[int, ast.AST]) -> set[str] | None:
    """The names one ``globals()``/``vars()``/``eval``/``exec`` call reads, or None when not a constant."""
    func = node.func
    assert isinstance(func, ast.Name)
    if func.id in ("eval", "exec"):
        text = _constant_string(node.args[0]) if node.args and len(node.args) == 1 else None
        return None if text is None else _code_names(text, "eval" if func.id == "eval" else "exec")
    if node.args or node.keywords:
        return None
    parent = parents.get(id(node))
    if isinstance(parent, ast.Subscript) and isinstance(parent.ctx, ast.Load):
        key = _constant_string(parent.slice)
        return None if key is None else {key}
    if isinstance(parent, ast.Attribute) and parent.attr == "get":
        call = parents.get(id(parent))
        if isinstance(call, ast.Call) and call.args:
            key = _constant_string(call.args[0])
            return None if key is None else {key}
    return None


def _construct(name: ast.Name, parents: dict[int, ast.AST]) -> ast.AST:
    """The expression to show for a lookup: ``globals()[key]`` rather than ``globals``."""
    shown: ast.AST = name
    for _ in range(3):  # the call, then its subscript or ``.get``, then that call
        parent = parents.get(id(shown))
        if not isinstance(parent, ast.Call | ast.Subscript | ast.Attribute):
            break
        shown = parent
    return shown


def dynamic_lookups(function: types.FunctionType, global_reads: set[str]) -> DynamicLookups:
    """Resolve ``function``'s lookups by string (its ``global_reads`` tell whether it has any)."""
    found = DynamicLookups()
    if not global_reads & _DYNAMIC:
        return found
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    except (OSError, TypeError, SyntaxError):
        found.unresolved = f"{sorted(global_reads & _DYNAMIC)[0]}()"
        return found
    parents = {id(child): parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in _DYNAMIC and isinstance(node.ctx, ast.Load):
            call = parents.get(id(node))
            names = _resolve(call, parents) if isinstance(call, ast.Call) and call.func is node else None
            if names is None:
                found.unresolved = found.unresolved or ast.unparse(_construct(node, parents))
            else:
                found.names |= names
    return found


def sets_module_attribute(tree: ast.AST, module_name: str, attribute: str) -> bool:
    """Whether ``tree`` sets ``module_name.attribute`` (by assignment or ``setattr`` with a constant name)."""
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.ctx, ast.Store)
            and isinstance(node.value, ast.Name)
            and (node.value.id, node.attr) == (module_name, attribute)
        ):
            return True
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "setattr"
            and len(node.args) >= 2
            and isinstance(node.args[0], ast.Name)
            and node.args[0].id == module_name
            and _constant_string(node.args[1]) == attribute
        ):
            return True
    return False
