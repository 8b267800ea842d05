"""What compiled code refers to: the global names it reads and the modules it imports, wherever they sit
(function bodies, methods, nested functions, comprehensions, conditional and aliased imports)."""

from __future__ import annotations

import dis
import inspect
import types
from collections.abc import Iterator
from typing import Any

_GLOBAL_OPS = frozenset({"LOAD_GLOBAL", "LOAD_NAME", "STORE_GLOBAL", "DELETE_GLOBAL"})


def code_objects(code: types.CodeType) -> Iterator[types.CodeType]:
    """``code`` and every code object nested in it (inner functions, lambdas, comprehensions, classes)."""
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from code_objects(const)


def functions_of(value: Any) -> list[types.FunctionType]:
    """The Python functions making up a function (itself) or a class (methods, properties, class/static methods)."""
    if inspect.isfunction(value):
        return [value]
    found: list[types.FunctionType] = []
    if inspect.isclass(value):
        for attr in vars(value).values():
            if isinstance(attr, property):
                found += [f for f in (attr.fget, attr.fset, attr.fdel) if inspect.isfunction(f)]
                continue
            inner = getattr(attr, "__func__", attr)
            if inspect.isfunction(inner):
                found.append(inner)
    return found


def global_names(code: types.CodeType) -> set[str]:
    """Global names ``code`` (and its nested code) reads or writes."""
    return {
        str(instruction.argval)
        for inner in code_objects(code)
        for instruction in dis.get_instructions(inner)
        if instruction.opname in _GLOBAL_OPS
    }


def imported_modules(code: types.CodeType) -> set[str]:
    """Absolute modules ``code`` imports at run time (``import yaml`` inside a body, ``from PIL import Image``)."""
    found: set[str] = set()
    for inner in code_objects(code):
        level = 0
        for instruction in dis.get_instructions(inner):
            if instruction.opname == "LOAD_CONST" and isinstance(instruction.argval, int):
                level = instruction.argval
            elif instruction.opname == "IMPORT_NAME" and level == 0 and instruction.argval:
                found.add(str(instruction.argval))
    return found


def global_attributes(code: types.CodeType) -> set[tuple[str, str]]:
    """``(name, attribute)`` for each ``name.attribute`` read where ``name`` is a global (``math.twice``)."""
    found: set[tuple[str, str]] = set()
    for inner in code_objects(code):
        previous: dis.Instruction | None = None
        for instruction in dis.get_instructions(inner):
            if (
                previous is not None
                and previous.opname in _GLOBAL_OPS
                and instruction.opname in ("LOAD_ATTR", "LOAD_METHOD")
            ):
                found.add((str(previous.argval), str(instruction.argval)))
            previous = instruction
    return found
