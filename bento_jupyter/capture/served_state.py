"""What a notebook definition's source text does not say: state it got after it ran.

A class attribute set, replaced or mutated after the class was defined, a function attribute, a default
argument evaluated from a value since reassigned (or mutated, or replaced through ``__defaults__``): the
source re-executed would make these differently. As cloudpickle does for the objects it copies (a class's
``__dict__``, a function's defaults and ``__dict__``), the bento keeps them as they were served and sets
them again on the re-created definitions once the bento is loaded.

A patch is ``(path, key, value)``: the dotted name of a definition in the bento (``Gate``, ``Outer.Cfg``),
the attribute to set on it (``__defaults__``, ``__kwdefaults__`` or any attribute) and its served value.
"""

from __future__ import annotations

import abc
import ast
import enum
import inspect
import types
from dataclasses import dataclass
from typing import Any

from bento_jupyter.capture.pickling import resolve
from bento_jupyter.service.api import API_ATTRIBUTE

STATE_OBJECT = "__served_state__"  # the stored object holding the patches that are not plain literals
REGISTER = "register()"  # a patch calling ``register(kind, implementation)`` for each pair (singledispatch)
_NO_VALUE = object()
_MACHINERY = frozenset({"_abc_impl"})  # ABCMeta's registry and caches, made again with the class


@dataclass(frozen=True)
class Patch:
    """One attribute to set on a re-created definition; ``in_body`` when its source assigns it too."""

    path: str
    key: str
    value: Any
    in_body: bool = False


def _evaluated(node: ast.AST | None) -> Any:
    if node is None:
        return _NO_VALUE
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return _NO_VALUE


def _same(source_value: Any, live: Any) -> bool:
    """Whether a literal from the source equals the live value, types included (``1`` is not ``1.0``)."""
    if source_value is _NO_VALUE or type(source_value) is not type(live):
        return False
    try:
        return bool(source_value == live) and repr(source_value) == repr(live)
    except Exception:  # a comparison that fails proves nothing
        return False


def _defaults_patches(path: str, function: types.FunctionType, node: ast.AST) -> list[Patch]:
    if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        return []
    patches = []
    written = [_evaluated(d) for d in node.args.defaults]
    live = function.__defaults__ or ()
    if len(written) != len(live) or not all(_same(w, v) for w, v in zip(written, live, strict=False)):
        patches.append(Patch(path, "__defaults__", function.__defaults__))
    written_kw = {a.arg: _evaluated(d) for a, d in zip(node.args.kwonlyargs, node.args.kw_defaults, strict=True) if d}
    live_kw = function.__kwdefaults__ or {}
    if written_kw.keys() != live_kw.keys() or not all(_same(written_kw[k], live_kw[k]) for k in live_kw):
        patches.append(Patch(path, "__kwdefaults__", function.__kwdefaults__))
    return patches


def _made_by_decorator(value: Any) -> bool:
    """What a library decorator puts on its wrapper itself (``__wrapped__``, singledispatch's ``register``)."""
    if isinstance(value, types.MappingProxyType | types.MethodType | types.BuiltinMethodType):
        return True  # a view of its registry, a method of its cache
    qualname = getattr(value, "__qualname__", "")
    return isinstance(qualname, str) and "<locals>" in qualname  # a closure it made


def _registrations(value: Any) -> list[Patch]:
    """Implementations registered on a ``functools.singledispatch`` function after it was defined."""
    registry = getattr(value, "registry", None)
    if not isinstance(registry, types.MappingProxyType) or not callable(getattr(value, "register", None)):
        return []
    added = [(kind, implementation) for kind, implementation in registry.items() if kind is not object]
    return [Patch("", REGISTER, added)] if added else []


def function_patches(path: str, value: Any, target: types.FunctionType, node: ast.AST) -> list[Patch]:
    """A function's defaults and attributes as served (for a decorated one, the defaults of what it wraps, the
    attributes set on its wrapper and the implementations registered on it)."""
    patches = _defaults_patches(path, target, node)
    if value is target:
        patches += [Patch(path, k, v) for k, v in vars(target).items() if k != API_ATTRIBUTE]
        return patches
    for key, attribute in (vars(value) if hasattr(value, "__dict__") else {}).items():
        if not (key.startswith("__") and key.endswith("__")) and not _made_by_decorator(attribute):
            patches.append(Patch(path, key, attribute))
    return patches + [Patch(path, p.key, p.value) for p in _registrations(value)]


def _body_literals(node: ast.ClassDef) -> dict[str, Any]:
    """Names the class body assigns, with the literal value it assigns (``_NO_VALUE`` when not a literal)."""
    found: dict[str, Any] = {}
    for statement in node.body:
        if isinstance(statement, ast.Assign):
            for target in statement.targets:
                if isinstance(target, ast.Name):
                    found[target.id] = _evaluated(statement.value) if len(statement.targets) == 1 else _NO_VALUE
        elif isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name) and statement.value:
            found[statement.target.id] = _evaluated(statement.value)
    return found


def _own_qualname(value: Any) -> str | None:
    """The qualified name of the function or class behind a class attribute, when it has one."""
    inner = value.fget if isinstance(value, property) else getattr(value, "__func__", value)
    name = getattr(inner, "__qualname__", None)
    return name if isinstance(name, str) else None


def _nested_classes(node: ast.ClassDef) -> dict[str, ast.ClassDef]:
    return {s.name: s for s in node.body if isinstance(s, ast.ClassDef)}


def class_patches(path: str, cls: type, node: ast.AST) -> list[Patch]:
    """Class attributes set, replaced or mutated after the class body ran (nested classes included)."""
    if not isinstance(node, ast.ClassDef) or isinstance(cls, enum.EnumMeta):
        return []  # an enum's members are fixed by its body
    literals = _body_literals(node)
    nested = _nested_classes(node)
    # a metaclass of a library (pydantic's, typing's) adds attributes of its own when the class is created:
    # only what the body assigns is compared there
    own_machinery = type(cls) not in (type, abc.ABCMeta)
    patches: list[Patch] = []
    for key, value in vars(cls).items():
        if key in _MACHINERY or (own_machinery and key not in literals):
            continue
        if _own_qualname(value) == f"{cls.__qualname__}.{key}":
            if inspect.isclass(value) and key in nested:
                patches += class_patches(f"{path}.{key}", value, nested[key])
            continue  # defined by the body (methods, properties, nested classes, slots)
        is_dunder = key.startswith("__") and key.endswith("__")
        if is_dunder and not callable(value):
            continue  # the class machinery's own (__doc__, __module__, __dataclass_fields__, ...)
        if _same(literals.get(key, _NO_VALUE), value):
            continue
        patches.append(Patch(path, key, value, in_body=key in literals))
    return patches


def definition_patches(path: str, value: Any, target: Any, node: ast.AST) -> list[Patch]:
    """What ``value`` (defined at ``node``; ``target`` is what a decorator wrapped) holds beyond its source."""
    if inspect.isclass(target):
        return class_patches(path, target, node)
    if inspect.isfunction(target):
        return function_patches(path, value, target, node)
    return []


def apply(namespace: dict[str, Any], patches: list[tuple[str, str, Any]]) -> None:
    """Set each patch on the loaded bento's definitions (defaults on what a decorator wrapped)."""
    for path, key, value in patches:
        target = resolve(namespace, path)
        if key == REGISTER:
            for kind, implementation in value:
                target.register(kind, implementation)
            continue
        if key in ("__defaults__", "__kwdefaults__"):
            target = inspect.unwrap(target)
        setattr(target, key, value)
