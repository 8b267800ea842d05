"""JSON Schemas of tensors: a request's nested lists of numbers and a result's, by what a hint declares.

A declared dtype types the numbers at every depth (``integer`` from -128 to 127 for int8), a declared shape fixes
the depth and sizes; each is documented whether or not the other is declared.
"""

from __future__ import annotations

from typing import Any

from bento_jupyter.service.json_values import NON_FINITE_SCHEMA
from bento_jupyter.service.tensor_spec import TensorSpec, value_range

MAX_JSON_DIMS = 8  # a tensor sent as nested JSON lists has at most this many (documented in /docs.json)
# BentoML's names for tensor formats in /schema.json; its client decodes outputs by them.
TENSOR_FORMATS = {"numpy": "numpy-array", "torch": "pytorch-tensor"}


def _item(spec: TensorSpec, result: bool) -> dict[str, Any]:
    """One number of the tensor: its declared dtype's JSON type and range; a result's floats may also be the
    strings that stand for NaN and ±Infinity."""
    dtype = spec.numpy_dtype
    item: dict[str, Any] = {"type": {"b": "boolean", "i": "integer", "u": "integer"}.get(dtype.kind, "number")}
    if dtype.kind != "b" and spec.dtype is not None:
        low, high = value_range(spec.dtype)
        item |= {"minimum": low, "maximum": high}
    return {"anyOf": [item, NON_FINITE_SCHEMA]} if result and item["type"] == "number" else item


def _nested(item: dict[str, Any], sizes: tuple[int, ...]) -> dict[str, Any]:
    value = item
    for size in reversed(sizes):
        value = {"type": "array", "items": value, **({"minItems": size, "maxItems": size} if size >= 0 else {})}
    return value


def _description(framework: str, spec: TensorSpec) -> str:
    shape = f" of shape {spec.shape} (-1: any size)" if spec.shape is not None else ""
    return TENSOR_FORMATS[framework] + shape + (f", dtype {spec.dtype}" if spec.dtype else "")


def request_tensor_schema(framework: str, spec: TensorSpec) -> dict[str, Any]:
    """A tensor in a request: exactly as deep as a declared shape (fixed sizes as ``minItems``/``maxItems``),
    else 1 to ``MAX_JSON_DIMS`` nested lists; the lists at one depth share a length, which JSON Schema cannot
    say: the description does."""
    item = _item(spec, result=False)
    if spec.shape is not None:
        return {**_nested(item, spec.shape), "description": _description(framework, spec)}
    return {
        "anyOf": [_nested(item, (-1,) * depth) for depth in range(1, MAX_JSON_DIMS + 1)],
        "description": f"{_description(framework, spec)} as nested lists of numbers, one level per dimension"
        f" (1 to {MAX_JSON_DIMS}); the lists at each depth all of one length",
    }


def result_tensor_schema(framework: str, spec: TensorSpec | None = None) -> dict[str, Any]:
    """A tensor in a result: nested lists as declared, or of any depth; a 0-d tensor is the number it holds."""
    spec = spec or TensorSpec()
    item = _item(spec, result=True)
    if spec.shape is not None:
        return {**_nested(item, spec.shape), "description": _description(framework, spec)}
    if spec.dtype is None:
        scalar = [{"type": "number"}, {"type": "boolean"}, NON_FINITE_SCHEMA]
        return {"anyOf": [{"type": "array", "items": {}}, *scalar], "description": TENSOR_FORMATS[framework]}
    depths = [_nested(item, (-1,) * depth) for depth in range(1, MAX_JSON_DIMS + 1)]
    return {"anyOf": [*depths, item], "description": _description(framework, spec) + "; 0-d: the number itself"}
