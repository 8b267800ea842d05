"""Which notebook variables look like models, with their type, size and device, found cheaply.

Sizing never pickles or copies: torch modules are measured exactly (parameters and buffers);
anything else is estimated by a bounded walk over its attributes that counts array and tensor
bytes and ``sys.getsizeof`` of the rest. torch and numpy are looked up in ``sys.modules``, never
imported: a notebook that has not imported them holds none of their objects.
"""

from __future__ import annotations

import inspect
import itertools
import sys
import types
from typing import Any

from bento_jupyter.torch_probe import is_torch_module, loaded_torch

MAX_WALK_NODES = 10_000  # objects visited per estimate: past this, the estimate is a lower bound
_ATOMS = (str, bytes, bytearray, int, float, complex, bool, type(None))


def model_kind(value: Any) -> str | None:
    """``torch`` (an ``nn.Module``), ``estimator`` (fit + predict), ``predictor`` (predict), or None."""
    if isinstance(value, type | types.ModuleType) or inspect.isroutine(value):
        return None
    if is_torch_module(value):
        return "torch"
    kind = type(value)  # the class, not the instance: no __getattr__ tricks run
    if not callable(getattr(kind, "predict", None)):
        return None
    return "estimator" if callable(getattr(kind, "fit", None)) else "predictor"


def type_name(value: Any) -> str:
    module, name = type(value).__module__, type(value).__qualname__
    return name if module in ("__main__", "builtins") else f"{module}.{name}"


def _module_footprint(module: Any) -> tuple[int, str | None]:
    tensors = itertools.chain(module.parameters(), module.buffers())
    total, device = 0, None
    for tensor in tensors:
        total += tensor.numel() * tensor.element_size()
        device = device or str(tensor.device)
    return total, device


def _attributes(obj: Any) -> list[Any]:
    """An object's instance attributes; none when it has no ``__dict__`` or its ``__getattr__`` misbehaves."""
    try:
        attributes = obj.__dict__
    except Exception:  # a user's __getattr__ may raise anything: sizing must never break the report
        return []
    return list(attributes.values()) if isinstance(attributes, dict) else []


def footprint(value: Any) -> tuple[int, str, bool]:
    """``(size_bytes, device, exact)`` of ``value``; ``exact`` only for torch modules."""
    if is_torch_module(value):
        size, device = _module_footprint(value)
        return size, device or "cpu", True
    torch, numpy = loaded_torch(), sys.modules.get("numpy")
    total, device, stack = 0, None, [value]
    seen: set[int] = set()
    while stack and len(seen) < MAX_WALK_NODES:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, type | types.ModuleType) or inspect.isroutine(obj):
            continue
        seen.add(id(obj))
        if numpy is not None and isinstance(obj, numpy.ndarray):
            total += obj.nbytes
        elif torch is not None and isinstance(obj, torch.Tensor):
            total += obj.numel() * obj.element_size()
            device = device or str(obj.device)
        elif torch is not None and isinstance(obj, torch.nn.Module):
            size, inner = _module_footprint(obj)
            total, device = total + size, device or inner
        else:
            total += sys.getsizeof(obj, 0)
            if isinstance(obj, _ATOMS):
                continue
            if isinstance(obj, dict):
                stack.extend(obj.values())
            elif isinstance(obj, list | tuple | set | frozenset):
                stack.extend(obj)
            else:
                stack.extend(_attributes(obj))
    return total, device or "cpu", False


def describe_models(namespace: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per model-like variable of ``namespace``, sorted by name."""
    found = []
    for variable, value in sorted(namespace.items()):
        kind = model_kind(value)
        if kind is None:
            continue
        size, device, exact = footprint(value)
        found.append(
            {
                "variable": variable,
                "type": type_name(value),
                "kind": kind,
                "size_bytes": size,
                "size_exact": exact,
                "device": device,
            }
        )
    return found
