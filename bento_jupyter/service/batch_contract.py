"""What a batchable API may take, checked when it is declared.

* ``np.ndarray`` and ``torch.Tensor``: requests are merged along ``batch_dim``; each item is a slice.
* ``list[T]`` (or ``Sequence[T]``, ``tuple[T, ...]``): requests are merged element by element (``batch_dim``
  must be 0); the handler gets one list, and returns one output per element.
* Anything else (str, dict, a pydantic model, a number) has no items to count: it is refused, with what to
  declare instead, rather than cut into pieces by ``len()``.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np

from bento_jupyter.errors import ServiceDefinitionError
from bento_jupyter.torch_probe import is_tensor_type

BatchKind = Literal["tensor", "list"]


def _is_tensor_hint(hint: Any) -> bool:
    return hint is np.ndarray or is_tensor_type(hint)


def batch_kind(name: str, hint: Any, batch_dim: int) -> BatchKind:
    """How requests of a batchable API with parameter type ``hint`` merge; ServiceDefinitionError if they cannot."""
    if typing.get_origin(hint) is typing.Annotated:  # a tensor's declared Shape, DType: what merges is the type
        hint = typing.get_args(hint)[0]
    if _is_tensor_hint(hint):
        return "tensor"
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    is_sequence = origin in (list, Sequence) or (origin is tuple and len(args) == 2 and args[1] is Ellipsis)
    if is_sequence:
        if batch_dim != 0:
            raise ServiceDefinitionError(f"{name}(): a list parameter batches by element: batch_dim must be 0")
        return "list"
    shown = getattr(hint, "__name__", None) or repr(hint)
    raise ServiceDefinitionError(
        f"{name}(): a batchable API's parameter must hold a batch of items, not one {shown}: declare it"
        f" np.ndarray or torch.Tensor (merged along batch_dim) or list[{shown}] (merged by element), and"
        " return one output per item"
    )


def check_batchable(func: Callable[..., Any], batch_dim: int) -> None:
    """Refuse a batchable ``func`` whose one parameter cannot be batched; hints not yet resolvable are left to
    the service definition."""
    try:
        hints = typing.get_type_hints(func)
        params = list(inspect.signature(func).parameters.values())
    except Exception:
        return
    if len(params) != 1:
        raise ServiceDefinitionError(f"{func.__name__}(): a batchable API takes exactly one parameter, the batch")
    batch_kind(func.__name__, hints.get(params[0].name, Any), batch_dim)
