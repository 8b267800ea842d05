"""Merge request values into one batch along ``batch_dim`` and split a batch's output back."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

from bento_jupyter.torch_probe import is_tensor, required_torch


def batch_size(value: Any, dim: int) -> int:
    """Number of items ``value`` carries along ``dim``."""
    if isinstance(value, np.ndarray) or is_tensor(value):
        return int(value.shape[dim]) if value.ndim > dim else 0
    return len(value)


def shape_key(value: Any, dim: int) -> Hashable:
    """Values with equal keys can be concatenated: same dtype and same shape off ``dim``."""
    if isinstance(value, np.ndarray) or is_tensor(value):
        shape = tuple(value.shape)
        return (value.dtype, shape[:dim] + shape[dim + 1 :])
    return None


def take(value: Any, start: int, stop: int, dim: int) -> Any:
    """Items ``start:stop`` of ``value`` along ``dim`` (a view where the type allows)."""
    if isinstance(value, np.ndarray) or is_tensor(value):
        index = [slice(None)] * value.ndim
        index[dim] = slice(start, stop)
        return value[tuple(index)]
    return value[start:stop]


def concat(values: Sequence[Any], dim: int) -> Any:
    """One batch from several values; a single value is passed through without a copy."""
    if len(values) == 1:
        return values[0]
    first = values[0]
    if isinstance(first, np.ndarray):
        return np.concatenate(values, axis=dim)
    if is_tensor(first):
        return required_torch().cat(list(values), dim=dim)
    return [item for value in values for item in value]


def _described(output: Any) -> str:
    """What a handler returned, for an error: its type, and its shape or length."""
    kind = type(output).__name__
    if isinstance(output, np.ndarray) or is_tensor(output):
        return f"{kind} of shape {tuple(output.shape)}"
    return f"{kind} of length {len(output)}" if hasattr(output, "__len__") else kind


def split(output: Any, sizes: Sequence[int], dim: int) -> list[Any]:
    """Cut a batch's output into one piece per request, by the requests' item counts."""
    total = sum(sizes)
    counted = hasattr(output, "__len__") or hasattr(output, "shape")
    if not counted or batch_size(output, dim) != total:
        raise ValueError(
            f"a batchable API must return one output item per input item along batch_dim {dim}:"
            f" got {_described(output)} for {total} input item{'s' if total != 1 else ''}"
        )
    if len(sizes) == 1:
        return [output]
    pieces, start = [], 0
    for size in sizes:
        pieces.append(take(output, start, start + size, dim))
        start += size
    return pieces
