"""Find everything handlers reach and slice it into readable source plus objects to store.

Starting from the handlers, follow the global names their code uses (recursively through
notebook-defined helpers and classes). Modules become imports; top-level notebook definitions
become source taken from the cells that defined them (decorators re-applied); literal constants
become assignments; everything else (models, arrays, fitted estimators, closures, lambdas,
``functools.partial`` objects, bound methods) is stored as it is now in the kernel, with references
to the bento's own definitions kept by name (see ``capture.pickling``). What cannot be stored raises
a one-line ``CaptureError`` naming the object, its cell and what to do.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import inspect
import textwrap
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bento_jupyter.capture import pickling
from bento_jupyter.capture.bytecode import functions_of, global_attributes, global_names, imported_modules
from bento_jupyter.capture.cells import CellLog, ExecutedCell
from bento_jupyter.capture.objects import module_refusal, stores_as_npy
from bento_jupyter.capture.served_state import STATE_OBJECT, Patch, definition_patches
from bento_jupyter.capture.unseen_names import HISTORY, dynamic_lookups, sets_module_attribute
from bento_jupyter.errors import CaptureError
from bento_jupyter.torch_probe import is_torch_module

_MAX_LITERAL_BYTES = 64 * 1024
_NOTEBOOK_MODULE = pickling.NOTEBOOK_MODULE


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


def _top_module(module: str) -> str:
    return module.split(".")[0]


def _ast_names(nodes: list[ast.AST]) -> set[str]:
    """Names read by ``nodes``, less those they bind themselves (a class body's own attributes)."""
    names = [n for node in nodes for n in ast.walk(node) if isinstance(n, ast.Name)]
    return {n.id for n in names if isinstance(n.ctx, ast.Load)} - {n.id for n in names if isinstance(n.ctx, ast.Store)}


def _signature_nodes(node: ast.AST) -> list[ast.AST]:
    """Decorators, annotations, defaults, bases and class-body statements: evaluated when the definition runs."""
    if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return []
    nodes: list[ast.AST] = list(node.decorator_list)
    if isinstance(node, ast.ClassDef):
        nodes += node.bases + [k.value for k in node.keywords]
        nodes += [s for s in node.body if not isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef)]
        for item in node.body:
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


def _parsed_cells(cell_log: CellLog) -> list[tuple[ExecutedCell, ast.Module, str]]:
    """The executed cells that parse as Python, latest first."""
    parsed = []
    for cell in reversed(cell_log.cells):
        body = _cell_body(cell)
        try:
            parsed.append((cell, ast.parse(body), body))
        except SyntaxError:
            continue
    return parsed


def _live_source(value: Any) -> str | None:
    """The source the live object was compiled from, when Python can still find it."""
    try:
        return textwrap.dedent(inspect.getsource(value))
    except (OSError, TypeError):
        return None


def _definition_source(node: ast.stmt, body: str) -> str:
    start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    lines = body.splitlines()[start - 1 : node.end_lineno]
    return textwrap.dedent("\n".join(lines))


def _without_decorators(source: str, indexes: list[int]) -> str:
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


def _binds(node: ast.AST, name: str) -> bool:
    """Whether a top-level statement binds ``name`` in the module scope."""
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return node.name == name
    if isinstance(node, ast.Import | ast.ImportFrom):
        return any((a.asname or a.name.split(".")[0]) == name for a in node.names)
    if isinstance(node, ast.Name):
        return node.id == name and isinstance(node.ctx, ast.Store)
    if isinstance(node, ast.Lambda):
        return False
    return any(_binds(child, name) for child in ast.iter_child_nodes(node))


def _literal(value: Any) -> str | None:
    """Source for a plain constant, or None when ``value`` is not one."""
    if isinstance(value, bool | int | float | str | bytes | type(None) | tuple | list | dict | set | frozenset):
        try:  # repr itself refuses ints beyond sys.get_int_max_str_digits(): such a value is stored instead
            text = repr(value)
            if len(text) <= _MAX_LITERAL_BYTES and ast.literal_eval(text) == value:
                return text
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return None
    return None


def _type_variable(value: Any) -> str | None:
    """Source for a plain ``TypeVar`` (classes name it in their bases while the bento's source runs)."""
    if not isinstance(value, typing.TypeVar) or value.__constraints__ or value.__bound__ is not None:
        return None
    flags = f"covariant={value.__covariant__}, contravariant={value.__contravariant__}"
    return f'__import__("typing").TypeVar({value.__name__!r}, {flags})'


def _unwrapped(value: Any) -> Any:
    """The function a decorator wrapped (``functools.wraps``, ``lru_cache``), else ``value`` itself."""
    try:
        return inspect.unwrap(value) if hasattr(value, "__wrapped__") else value
    except ValueError:  # a __wrapped__ cycle
        return value


def _importable(module: str, qualname: str, value: Any) -> bool:
    """Whether ``from module import qualname`` gives back ``value`` itself."""
    if "<" in qualname or "." in qualname:
        return False
    try:
        return getattr(importlib.import_module(module), qualname, None) is value
    except Exception:  # an import that fails is not a way to get the object back
        return False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:160]}" if text else type(exc).__name__


class _Walker:
    def __init__(self, namespace: dict[str, Any], cell_log: CellLog) -> None:
        self.namespace = namespace
        self.cells = _parsed_cells(cell_log)
        self.slice = CodeSlice()
        self._seen: set[str] = set()

    def visit_names(self, names: set[str], user: str) -> None:
        """Capture each of ``names`` that ``user`` (a definition or object) refers to."""
        for name in sorted(names):
            if name in self._seen:
                continue
            if name not in self.namespace:
                self._check_not_deleted(name, user)
                continue
            self._seen.add(name)
            self.visit(name, self.namespace[name])

    def _check_not_deleted(self, name: str, user: str) -> None:
        """A name the code reads that a cell bound but the kernel no longer has: the served code answered with
        it, the bento would fail where it is used."""
        if hasattr(builtins, name):
            return
        cell = self.binding_cell(name)
        if cell is not None and not cell.completed:
            raise CaptureError(
                f"cannot capture {user!r}: it uses {name!r}, which {describe_cell(cell)} was to define but that cell"
                f" never completed (it raised); fix it and run it again (or remove {name!r} from {user!r}), then build"
            )
        if cell is not None:
            raise CaptureError(
                f"cannot capture {user!r}: it uses {name!r}, which {describe_cell(cell)} defined but the kernel no"
                f" longer has (deleted or reset since); run that cell again (or remove {name!r} from {user!r}),"
                " then build"
            )

    def visit(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType):
            self._import_module(name, value)
            return
        target = _unwrapped(value)
        if (
            (inspect.isfunction(target) or inspect.isclass(target))
            and target.__module__ == _NOTEBOOK_MODULE
            and self._define(name, value, target)
        ):
            return
        if self._import_by_reference(name, value):
            return
        literal = _literal(value) or _type_variable(value)
        if literal is not None:
            self.slice.constants[name] = literal
            return
        self._store(name, value)

    def _import_by_reference(self, name: str, value: Any) -> bool:
        """``from MODULE import NAME`` for a library's own function, class or other named object (``np.sqrt``)."""
        module = getattr(value, "__module__", None)
        qualname = getattr(value, "__qualname__", None) or getattr(value, "__name__", None)
        if not isinstance(module, str) or not isinstance(qualname, str) or module == _NOTEBOOK_MODULE:
            return False
        public = module.lstrip("_")  # C accelerators (``_functools.reduce``) have a public home
        if public != module and _importable(public, qualname, value):
            module = public
        elif not _importable(module, qualname, value):
            return False
        if module != "builtins" or name != qualname:
            self.slice.modules.add(_top_module(module))
            statement = f"from {module} import {qualname}"
            self.slice.imports[name] = statement if name == qualname else f"{statement} as {name}"
        return True

    def _import_module(self, name: str, value: types.ModuleType) -> None:
        module = value.__name__
        top = _top_module(module)
        self.slice.modules.add(top)
        self.slice.imports[name] = (
            f"import {module}" if name == module or (name == top and "." in module) else f"import {module} as {name}"
        )

    def _define(self, name: str, value: Any, target: Any) -> bool:
        """Capture a top-level notebook definition as source; False when it is not one (lambda, closure...)."""
        own = target.__name__
        if target.__qualname__ != own or self.namespace.get(own) is not value:
            return False  # a lambda, a nested function or method, or a name since rebound to something else
        if own != name:  # an alias: ``double = scale``
            self.visit_names({own}, name)  # defines it under its own name, unless already visited
            definition = self.slice.definitions.get(own)
            if definition is None:
                return False
            definition.aliases.append(name)
            return True
        found = self._find_in_cells(target)
        if found is None:
            return False
        cell, node, source = found
        # A notebook decorator ran in the notebook and is not run again (it may register, count or cache): what
        # it made is held as served. One that returned the function itself is shown commented out; a wrapper it
        # made is stored as the kernel holds it.
        notebook_decorators = [d for d in getattr(node, "decorator_list", []) if not self._library(d)]
        if notebook_decorators and value is not target:
            return False
        skipped = notebook_decorators
        definition = Definition(
            name,
            _without_decorators(source, [i for i, d in enumerate(node.decorator_list) if d in skipped]),
            cell,
            (cell.sequence, node.lineno) if cell else (-1, 0),
            value,
        )
        self.slice.definitions[name] = definition
        functions = functions_of(target) + ([value] if value is not target and inspect.isfunction(value) else [])
        for function in functions:
            self.slice.modules |= {_top_module(m) for m in imported_modules(function.__code__)}
        read = _ast_names([n for n in _signature_nodes(node) if not any(n is d for d in skipped)])
        read |= self._unseen_names(name, cell, functions)
        self.visit_names(read | {n for f in functions for n in global_names(f.__code__)}, name)
        for patch in definition_patches(name, value, target, node):
            self._patch(definition, patch)
        return True

    def _library(self, decorator: ast.expr) -> bool:
        """Whether a decorator comes from a module or a library's function or class (``@dataclass``, ``@api``)."""
        root: ast.expr = decorator
        while isinstance(root, ast.Call | ast.Attribute):
            root = root.func if isinstance(root, ast.Call) else root.value
        if not isinstance(root, ast.Name):
            return False
        value = self.namespace.get(root.id, getattr(builtins, root.id, None))
        if isinstance(value, types.ModuleType):
            return True
        is_definition = inspect.isfunction(value) or inspect.isclass(value) or inspect.isbuiltin(value)
        return is_definition and getattr(value, "__module__", _NOTEBOOK_MODULE) != _NOTEBOOK_MODULE

    def _patch(self, definition: Definition, patch: Patch) -> None:
        """Keep state a definition got after it ran: an assignment in the source, or a stored value."""
        literal = _literal(patch.value)
        if literal is not None and patch.key.isidentifier():
            definition.patches.append(f"{patch.path}.{patch.key} = {literal}")
            return
        reached: list[Any] = []
        try:
            self.slice.modules |= {_top_module(m) for m in pickling.survey(patch.value, self._known(), reached.append)}
        except Exception as exc:
            if patch.in_body:  # computed by the class body, which the bento runs again: nothing to keep
                return
            raise CaptureError(
                f"cannot capture {patch.path}.{patch.key} (set after {definition.name!r} was defined, from"
                f" {describe_cell(definition.cell)}): it cannot be saved ({_first_line(exc)}); set it inside the"
                " definition instead, or make it a value that can be pickled"
            ) from None
        self.slice.state.append(patch)
        reachable = {n for o in reached if self.namespace.get(n := getattr(o, "__name__", "")) is o}
        self.visit_names(reachable, definition.name)

    def _find_in_cells(
        self, target: Any
    ) -> tuple[ExecutedCell | None, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef, str] | None:
        """The latest executed cell defining ``target`` at top level, with its node and source.

        When the object's own source is known, only a cell holding that exact definition matches:
        a later cell redefining the same name must not stand in for the object actually served.
        """
        live = _live_source(target)
        for cell, tree, body in self.cells:
            for node in tree.body:
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and node.name == (
                    target.__name__
                ):
                    source = _definition_source(node, body)
                    if live is None or source.strip() == live.strip():
                        return cell, node, source
        if live is not None:  # defined outside the recorded cells (%run, exec): its own source is the truth
            node = ast.parse(live).body[0]
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                return None, node, live
        return None

    def _unseen_names(self, user: str, cell: ExecutedCell | None, functions: list[Any]) -> set[str]:
        """The names ``functions`` look up by constant strings; refuse what capture cannot see (IPython's output
        history, lookups by computed strings, attributes a cell set on an imported module)."""
        where = f"{user!r} (from {describe_cell(cell)})"
        names: set[str] = set()
        for function in functions:
            reads = global_names(function.__code__)
            for read in sorted(reads):
                if HISTORY.fullmatch(read):  # IPython rebinds them at each output, whatever a cell set
                    raise CaptureError(
                        f"cannot capture {where}: it reads {read!r}, IPython's output history, which a bento does not"
                        f" have; assign that value to a name in a cell and use the name in {user!r}"
                    )
            lookups = dynamic_lookups(function, reads)
            if lookups.unresolved is not None:
                raise CaptureError(
                    f"cannot capture {where}: it looks names up at run time ({lookups.unresolved}), which capture"
                    " cannot follow; refer to the objects by name (or by a constant string), or keep them in a dict"
                    " the function reads"
                )
            names |= lookups.names
            for module_name, attribute in sorted(global_attributes(function.__code__)):
                module = self.namespace.get(module_name)
                if not isinstance(module, types.ModuleType):
                    continue
                patched = self._patching_cell(module_name, attribute)
                value = getattr(module, attribute, None)
                if patched is not None or getattr(value, "__module__", None) == _NOTEBOOK_MODULE:
                    raise CaptureError(
                        f"cannot capture {where}: it uses {module_name}.{attribute}, which {describe_cell(patched)}"
                        f" set on the imported module {module.__name__} (a bento imports it afresh, without it);"
                        f" define {attribute} in a cell and call it by name"
                    )
        return names

    def _patching_cell(self, module_name: str, attribute: str) -> ExecutedCell | None:
        """The latest cell that sets ``module_name.attribute``."""
        return next((c for c, tree, _ in self.cells if sets_module_attribute(tree, module_name, attribute)), None)

    def binding_cell(self, name: str) -> ExecutedCell | None:
        """The latest cell whose top-level code binds ``name``."""
        for cell, tree, _ in self.cells:
            if any(_binds(node, name) for node in tree.body):
                return cell
        return None

    def _store(self, name: str, value: Any) -> None:
        """Keep ``value`` as it is now; follow what it reaches so the slice and requirements are complete."""
        self.slice.objects[name] = value
        self.slice.origins[name] = self.binding_cell(name)
        kind = type(value)
        if inspect.isfunction(value) and value.__module__ == _NOTEBOOK_MODULE:
            # a closure or lambda: its helpers first, so that it refers to them by name
            unseen = self._unseen_names(name, self.slice.origins[name], [value])
            self.visit_names(global_names(value.__code__) | unseen, name)
        if kind.__module__ == _NOTEBOOK_MODULE and self.namespace.get(kind.__name__) is kind:
            self.visit_names({kind.__name__}, name)
        if is_torch_module(value):
            refusal = module_refusal(name, value)
            if refusal is not None:
                raise CaptureError(
                    f"cannot capture {name!r} ({kind.__qualname__}, from {describe_cell(self.slice.origins[name])}):"
                    f" {refusal}"
                )
            self.slice.modules.add("torch")
            for module in value.modules():
                cls = type(module)
                if cls.__module__ == _NOTEBOOK_MODULE:
                    self.visit_names({cls.__name__}, name)
                else:
                    self.slice.modules.add(_top_module(cls.__module__))
            return
        if stores_as_npy(value):
            self.slice.modules.add("numpy")
            return
        reached: list[Any] = []
        try:
            modules = pickling.survey(value, self._known(), reached.append)
        except Exception as exc:  # whatever pickling raises, the user gets one line about their object
            raise CaptureError(
                f"cannot capture {name!r} ({kind.__qualname__}, from {describe_cell(self.slice.origins[name])}):"
                f" it cannot be saved ({_first_line(exc)}); create it inside the function that uses it,"
                " or replace it with a value that can be pickled"
            ) from None
        self.slice.modules |= {_top_module(m) for m in modules}
        self.visit_names({n for o in reached if self.namespace.get(n := getattr(o, "__name__", "")) is o}, name)
        for function in (o for o in reached if inspect.isfunction(o)):  # lambdas and closures inside it
            for missing in global_names(function.__code__) - self.namespace.keys():
                self._check_not_deleted(missing, name)

    def _known(self) -> pickling.References:
        references = self.slice.references()
        for name, value in self.slice.objects.items():
            references.add(name, value)
        return references


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
    walker._store(name, value)
    return walker.slice
