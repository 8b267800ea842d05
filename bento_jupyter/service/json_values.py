"""JSON as services write it: numpy and torch values as plain numbers and lists, integers of any size exactly,
and NaN, Infinity and -Infinity as the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` (JSON has no
number for them; a schema declares them with ``NON_FINITE_SCHEMA``). Sets, frozensets and deques are lists;
``np.longdouble`` is narrowed to a float (JSON numbers are float64), complex numbers are written as pydantic
writes Python's, the string ``"1+2j"``. A float16 or float32 value is written in the shortest form that reads back
as the same value of its own dtype (``np.float32(0.2)`` is ``0.2``, never ``0.20000000298023224``), as orjson writes
a float32 array, whatever the hint that sends it.
"""

from __future__ import annotations

import json
import math
from collections import deque
from typing import Any

import numpy as np
import orjson

from bento_jupyter.torch_probe import is_tensor

NON_FINITE_SCHEMA: dict[str, Any] = {
    "type": "string",
    "enum": ["NaN", "Infinity", "-Infinity"],
    "description": "a float that JSON cannot write as a number",
}

_OPTIONS = orjson.OPT_NON_STR_KEYS  # {1: ...} as {"1": ...}, as the standard library writes it


def _shortest(value: np.ndarray | np.floating[Any]) -> Any:
    """A float16 or float32 array or scalar as Python floats (nested as its shape) that print as the shortest
    decimal naming the same value of its own dtype: numpy's ``str`` of one, orjson's writing of a finite float32
    array (8 times faster for big ones)."""
    if isinstance(value, np.floating):
        return float(str(value))
    if value.dtype == np.float32 and value.ndim and np.isfinite(value).all():
        return orjson.loads(orjson.dumps(np.ascontiguousarray(value), option=orjson.OPT_SERIALIZE_NUMPY))
    return value.astype(str).astype(np.float64).tolist()


def _narrow_float(dtype: np.dtype[Any]) -> bool:
    return dtype.kind == "f" and dtype.itemsize < 8


def _non_finite_name(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def json_ready(value: Any, *, non_finite_as_strings: bool = True) -> Any:
    """``value`` with numpy and torch values made plain Python, and non-finite floats made strings (unless
    ``non_finite_as_strings`` is False: then they stay floats).

    Dicts, lists, tuples, sets and deques are walked (the last three become lists); other objects (datetimes,
    UUIDs, dataclasses) are left as they are.
    """
    if isinstance(value, float):  # np.float64 included
        if math.isfinite(value) or not non_finite_as_strings:
            return float(value)
        return _non_finite_name(value)
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, dict):
        return {
            json_ready(key, non_finite_as_strings=non_finite_as_strings): json_ready(
                item, non_finite_as_strings=non_finite_as_strings
            )
            for key, item in value.items()
        }
    if isinstance(value, (list, tuple, set, frozenset, deque)):
        return [json_ready(item, non_finite_as_strings=non_finite_as_strings) for item in value]
    if isinstance(value, (np.ndarray, np.floating)) and _narrow_float(value.dtype):
        return json_ready(_shortest(value), non_finite_as_strings=non_finite_as_strings)
    if isinstance(value, np.generic):
        item = value.item()
        if isinstance(item, np.generic):  # longdouble and clongdouble: no Python number holds them
            item = complex(item) if np.iscomplexobj(item) else float(item)
        return json_ready(item, non_finite_as_strings=non_finite_as_strings)
    if isinstance(value, np.ndarray):
        return json_ready(value.tolist(), non_finite_as_strings=non_finite_as_strings)
    if is_tensor(value):
        return json_ready(tensor_as_array(value), non_finite_as_strings=non_finite_as_strings)
    return value


def tensor_as_array(tensor: Any) -> np.ndarray:
    """A torch tensor's values as a numpy array (bfloat16 widened to float32, which holds it exactly)."""
    tensor = tensor.detach().cpu()
    return (tensor.float() if str(tensor.dtype) == "torch.bfloat16" else tensor).numpy()


def _numpy_or_torch(value: Any) -> Any:
    if isinstance(value, (np.ndarray, np.generic)) or is_tensor(value):
        return json_ready(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON of ``value``; TypeError names a type that has no JSON form.

    orjson writes the common case. It writes NaN and ±Infinity as ``null`` and refuses integers beyond
    64 bits, so any ``null`` in its output or any refusal sends the value through ``json_ready``, and what
    orjson still refuses (big integers) through the standard library, which writes them exactly.
    """
    if isinstance(value, (np.ndarray, np.float16)) and value.dtype == np.float16:  # orjson: float32's form
        value = json_ready(value)
    try:
        written = orjson.dumps(value, default=_numpy_or_torch, option=_OPTIONS | orjson.OPT_SERIALIZE_NUMPY)
        if b"null" not in written:
            return written
    except TypeError:
        pass
    ready = json_ready(value)
    try:
        return orjson.dumps(ready, option=_OPTIONS)
    except TypeError:
        return json.dumps(ready, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
