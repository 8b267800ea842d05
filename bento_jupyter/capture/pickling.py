"""Pickles that keep the notebook's identities: what the bento defines is referred to by name, not copied.

cloudpickle copies notebook (``__main__``) classes and functions by value. Loaded beside the bento's
re-created source, such a copy would be a *second* class of the same name: ``isinstance`` against the
bento's class fails and the handler answers differently than the kernel did. Here every object the bento
holds under a name (its source definitions and the objects stored before this one) is written as a
persistent reference ``("bento", NAME)`` and resolved against the loaded bento's namespace, so an object of
a notebook class is an instance of the bento's class of that name, and shared objects stay shared.

While pickling we also note the modules the pickle will import when loaded, and the notebook definitions it
reaches, so requirements and the source slice are complete.
"""

from __future__ import annotations

import io
import pickle
import types
from collections.abc import Callable
from typing import IO, Any, cast

import cloudpickle

from bento_jupyter.capture.bytecode import imported_modules
from bento_jupyter.errors import BentoIntegrityError

_REFERENCE = "bento"
NOTEBOOK_MODULE = "__main__"


class References:
    """Objects a bento holds by name, by identity: what pickles refer to instead of copying."""

    def __init__(self) -> None:
        self._names: dict[int, str] = {}
        self._keep: list[Any] = []  # ids stay valid only while the objects live

    def add(self, name: str, value: Any) -> None:
        """``value`` under ``name``; a class's nested classes too, under dotted names (``Outer.Inner``)."""
        self._names.setdefault(id(value), name)
        self._keep.append(value)
        if isinstance(value, type):
            for key, inner in vars(value).items():
                if isinstance(inner, type) and inner.__qualname__ == f"{value.__qualname__}.{key}":
                    self.add(f"{name}.{key}", inner)

    def name_of(self, value: Any) -> str | None:
        return self._names.get(id(value))


class _Pickler(cloudpickle.Pickler):
    def __init__(
        self, file: IO[bytes], root: Any, references: References, on_object: Callable[[Any], None] | None
    ) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._root = root
        self._references = references
        self._on_object = on_object
        self.modules: set[str] = set()

    def persistent_id(self, obj: Any) -> Any:
        if obj is not self._root:
            name = self._references.name_of(obj)
            if name is not None:
                return (_REFERENCE, name)
        if isinstance(obj, types.ModuleType):
            self.modules.add(obj.__name__)
        elif isinstance(obj, types.CodeType):
            self.modules |= imported_modules(obj)
        elif isinstance(obj, type | types.FunctionType | types.BuiltinFunctionType):
            module = getattr(obj, "__module__", None)
            if isinstance(module, str) and module != NOTEBOOK_MODULE:
                self.modules.add(module)
            elif module == NOTEBOOK_MODULE and self._on_object is not None:
                self._on_object(obj)
        return None


class _Sink(io.RawIOBase):
    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        return len(data)


def dump(
    value: Any, file: IO[bytes], references: References, on_object: Callable[[Any], None] | None = None
) -> set[str]:
    """Pickle ``value`` into ``file``; return the modules loading it will import."""
    pickler = _Pickler(file, value, references, on_object)
    pickler.dump(value)
    return pickler.modules


def survey(value: Any, references: References, on_object: Callable[[Any], None]) -> set[str]:
    """Pickle ``value`` into nothing: raises what pickling would raise, calls ``on_object`` for every notebook
    class or function the pickle would copy, and returns the modules it would import."""
    return dump(value, cast(IO[bytes], _Sink()), references, on_object)


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: IO[bytes], namespace: dict[str, Any]) -> None:
        super().__init__(file)
        self._namespace = namespace

    def persistent_load(self, pid: Any) -> Any:
        if isinstance(pid, tuple) and len(pid) == 2 and pid[0] == _REFERENCE and isinstance(pid[1], str):
            try:
                return resolve(self._namespace, pid[1])
            except (KeyError, AttributeError):
                pass
        raise BentoIntegrityError(f"a stored object refers to {pid!r}, which the bento does not define")


def resolve(namespace: dict[str, Any], path: str) -> Any:
    """The object at a dotted ``path`` (``Outer.Inner``) of the bento's namespace (KeyError, AttributeError)."""
    first, *rest = path.split(".")
    value = namespace[first]
    for attribute in rest:
        value = getattr(value, attribute)
    return value


def load(file: IO[bytes], namespace: dict[str, Any]) -> Any:
    """Unpickle, resolving references to the bento's own names in ``namespace``."""
    return _Unpickler(file, namespace).load()
