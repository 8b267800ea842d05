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
import inspect
import types
from collections.abc import Callable
from typing import Any

from bento_jupyter.capture import pickling
from bento_jupyter.capture.bytecode import functions_of, global_attributes, global_names, imported_modules
from bento_jupyter.capture.cell_source import (
    binds,
    definition_source,
    live_source,
    names_read,
    parsed_cells,
    signature_nodes,
    without_decorators,
)
from bento_jupyter.capture.cells import CellLog, ExecutedCell
from bento_jupyter.capture.code_slice import CodeSlice, Definition, describe_cell
from bento_jupyter.capture.imports import module_import, reference_import, top_module
from bento_jupyter.capture.literals import literal_source, type_variable_source
from bento_jupyter.capture.objects import module_refusal, stores_as_npy
from bento_jupyter.capture.served_state import Patch, definition_patches
from bento_jupyter.capture.unseen_names import HISTORY, dynamic_lookups, sets_module_attribute
from bento_jupyter.errors import CaptureError
from bento_jupyter.torch_probe import is_torch_module

_NOTEBOOK_MODULE = pickling.NOTEBOOK_MODULE


def _unwrapped(value: Any) -> Any:
    """The function a decorator wrapped (``functools.wraps``, ``lru_cache``), else ``value`` itself."""
    try:
        return inspect.unwrap(value) if hasattr(value, "__wrapped__") else value
    except ValueError:  # a __wrapped__ cycle
        return value


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:160]}" if text else type(exc).__name__


class _Walker:
    def __init__(self, namespace: dict[str, Any], cell_log: CellLog) -> None:
        self.namespace = namespace
        self.cells = parsed_cells(cell_log)
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
        literal = literal_source(value) or type_variable_source(value)
        if literal is not None:
            self.slice.constants[name] = literal
            return
        self._store(name, value)

    def _import_by_reference(self, name: str, value: Any) -> bool:
        """``from MODULE import NAME`` for a library's own function, class or other named object (``np.sqrt``)."""
        found = reference_import(name, value)
        if found is None:
            return False
        if found.statement is not None:
            self.slice.modules.add(top_module(found.module))
            self.slice.imports[name] = found.statement
        return True

    def _import_module(self, name: str, value: types.ModuleType) -> None:
        self.slice.modules.add(top_module(value.__name__))
        self.slice.imports[name] = module_import(name, value)

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
            without_decorators(source, [i for i, d in enumerate(node.decorator_list) if d in skipped]),
            cell,
            (cell.sequence, node.lineno) if cell else (-1, 0),
            value,
        )
        self.slice.definitions[name] = definition
        functions = functions_of(target) + ([value] if value is not target and inspect.isfunction(value) else [])
        for function in functions:
            self.slice.modules |= {top_module(m) for m in imported_modules(function.__code__)}
        read = names_read([n for n in signature_nodes(node) if not any(n is d for d in skipped)])
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
        literal = literal_source(patch.value)
        if literal is not None and patch.key.isidentifier():
            definition.patches.append(f"{patch.path}.{patch.key} = {literal}")
            return
        reached: list[Any] = []
        try:
            self.slice.modules |= {top_module(m) for m in pickling.survey(patch.value, self._known(), reached.append)}
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
        live = live_source(target)
        for cell, tree, body in self.cells:
            for node in tree.body:
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and node.name == (
                    target.__name__
                ):
                    source = definition_source(node, body)
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
            if any(binds(node, name) for node in tree.body):
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
                    self.slice.modules.add(top_module(cls.__module__))
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
        self.slice.modules |= {top_module(m) for m in modules}
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
