"""How a module or a library's own object comes back in the bento: as an import statement."""

from __future__ import annotations

import importlib
import types
from dataclasses import dataclass
from typing import Any

from bento_jupyter.capture.pickling import NOTEBOOK_MODULE


def top_module(module: str) -> str:
    """The top-level package of a dotted module name (``a`` of ``a.b.c``)."""
    return module.split(".")[0]


def _importable(module: str, qualname: str, value: Any) -> bool:
    """Whether ``from module import qualname`` gives back ``value`` itself."""
    if "<" in qualname or "." in qualname:
        return False
    try:
        return getattr(importlib.import_module(module), qualname, None) is value
    except Exception:  # an import that fails is not a way to get the object back
        return False


@dataclass(frozen=True)
class Import:
    """``statement`` binds a name to an object of ``module`` (None: a builtin under its own name needs none)."""

    module: str
    statement: str | None


def module_import(name: str, module: types.ModuleType) -> str:
    """The statement binding ``name`` to ``module``: ``import a.b``, or ``import a.b as name``."""
    full = module.__name__
    if name == full or (name == top_module(full) and "." in full):  # ``import a.b`` binds ``a``
        return f"import {full}"
    return f"import {full} as {name}"


def reference_import(name: str, value: Any) -> Import | None:
    """``from MODULE import NAME`` for a library's own function, class or other named object (``np.sqrt``); None
    when importing gives back another object, or none."""
    module = getattr(value, "__module__", None)
    qualname = getattr(value, "__qualname__", None) or getattr(value, "__name__", None)
    if not isinstance(module, str) or not isinstance(qualname, str) or module == NOTEBOOK_MODULE:
        return None
    public = module.lstrip("_")  # C accelerators (``_functools.reduce``) have a public home
    if public != module and _importable(public, qualname, value):
        module = public
    elif not _importable(module, qualname, value):
        return None
    if module == "builtins" and name == qualname:
        return Import(module, None)
    statement = f"from {module} import {qualname}"
    return Import(module, statement if name == qualname else f"{statement} as {name}")
