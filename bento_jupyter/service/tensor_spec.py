"""A tensor parameter's declared shape and dtype: ``Annotated[np.ndarray, Shape((-1, 4)), DType("float32")]``.

The names and fields are BentoML's (``bentoml.validators.Shape`` and ``DType`` are read the same way). What is
declared is enforced on every route and documented in ``/docs.json``, ``/schema.json`` and v2 metadata.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from bento_jupyter.errors import InvalidInput, ServiceDefinitionError
from bento_jupyter.service import bfloat16


@dataclass(frozen=True)
class Shape:
    """A tensor's declared shape, one size per dimension, ``-1`` for any size (the batch, usually)."""

    dimensions: tuple[int, ...]


@dataclass(frozen=True)
class DType:
    """A tensor's declared dtype, by numpy's name (``"float32"``, ``"int64"``, ``"bool"``) or ``"bfloat16"``
    (a torch handler gets ``torch.bfloat16``, a numpy one float32 holding bfloat16 values: numpy has none)."""

    dtype: str


@dataclass(frozen=True)
class TensorSpec:
    """What a parameter declares; ``None`` where nothing is declared."""

    shape: tuple[int, ...] | None = None
    dtype: str | None = None

    @classmethod
    def from_metadata(cls, metadata: Iterable[Any], name: str = "tensor") -> TensorSpec:
        """From ``Annotated`` metadata: any object with ``dimensions`` (a shape) or ``dtype`` (a name)."""
        shape = dtype = None
        for item in metadata:
            if isinstance(getattr(item, "dimensions", None), tuple | list):
                shape = tuple(item.dimensions)
                if not all(isinstance(d, int) and d >= -1 for d in shape):
                    raise ServiceDefinitionError(f"{name}: a shape holds sizes >= 0 or -1 (any), not {shape}")
            elif getattr(item, "dtype", None) == bfloat16.NAME:
                dtype = bfloat16.NAME
            elif isinstance(getattr(item, "dtype", None), str):
                try:
                    dtype = np.dtype(item.dtype).name
                except TypeError:
                    raise ServiceDefinitionError(f"{name}: {item.dtype!r} is not a numpy dtype") from None
                if np.dtype(dtype).kind not in "biuf" or np.dtype(dtype).itemsize > 8:
                    raise ServiceDefinitionError(f"{name}: a tensor's dtype is bool, or numeric of 8 bytes at most")
        return cls(shape, dtype)

    def apply(self, array: np.ndarray, field: str, *, keep_infinities: bool = False) -> np.ndarray:
        """``array`` checked against the declared shape and cast to the declared dtype; InvalidInput names
        ``field`` when the shape differs or a value does not fit the dtype (a fraction for an integer, a
        number beyond its range, a number where booleans are declared). ``keep_infinities``: ±Infinity is
        no number beyond a float dtype's range (a result's overflow is the handler's own answer)."""
        if self.shape is not None and array.shape == (0,) and len(self.shape) > 1:  # [] is no item of any shape
            array = array.reshape((0, *(max(size, 0) for size in self.shape[1:])))
        if self.shape is not None and (
            array.ndim != len(self.shape) or any(d not in (-1, n) for d, n in zip(self.shape, array.shape, strict=True))
        ):
            raise InvalidInput(field, f"expected shape {self.shape} (-1: any size), got {array.shape}")
        if self.dtype is None or (array.dtype == self.dtype and self.dtype != bfloat16.NAME):
            return array
        target = self.numpy_dtype
        if array.size == 0:  # JSON's [] is float64 to numpy, and holds no value of any dtype
            return array.astype(target)
        if (target.kind == "b") != (array.dtype.kind == "b"):
            raise InvalidInput(field, f"expected {'booleans' if target.kind == 'b' else 'numbers'} for {target}")
        low, high = value_range(self.dtype)
        ranged = array[np.isfinite(array)] if keep_infinities and array.dtype.kind == "f" else array
        if ranged.size and (ranged.min().item() < low or ranged.max().item() > high):  # Python numbers: no overflow
            raise InvalidInput(field, f"a value is beyond the range of {self.dtype}")
        cast = array.astype(target)
        if target.kind in "iu" and not np.array_equal(cast, array):
            raise InvalidInput(field, f"expected integers for {target}")
        return bfloat16.round_to_bfloat16(cast) if self.dtype == bfloat16.NAME else cast

    @property
    def numpy_dtype(self) -> np.dtype[Any]:
        """The numpy dtype values are held in (float32 for bfloat16); float64 when none is declared."""
        return np.dtype("float32" if self.dtype == bfloat16.NAME else self.dtype or "float64")


def value_range(name: str) -> tuple[float, float]:
    """The smallest and largest value the dtype ``name`` holds (booleans: 0 and 1)."""
    if name == bfloat16.NAME:
        return -bfloat16.MAX, bfloat16.MAX
    dtype = np.dtype(name)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return info.min, info.max
    if dtype.kind == "f":
        finfo = np.finfo(dtype)
        return float(finfo.min), float(finfo.max)
    return 0, 1
