"""What v2 model metadata says of an API's inputs and output, from its hints and (for an output its hint leaves
open) its last answer; and an empty answer put in the datatype and shape that metadata gives.

The protocol's shape is a list of sizes (-1: any), with no word for a tensor of any rank (Triton supports none;
TF Serving flags ``unknown_rank``): a tensor of undeclared shape, which takes 1 to 8 dimensions, is ``[-1]`` with
``parameters: {"unknown_rank": true, "max_rank": 8}``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bento_jupyter.service import bfloat16
from bento_jupyter.service.codecs import Codec, TensorCodec
from bento_jupyter.service.tensor_schema import MAX_JSON_DIMS

# v2 datatypes <-> numpy dtypes; BYTES carries strings (UTF-8 text in JSON); BF16, which numpy lacks, is
# carried in float32 (see service/bfloat16.py).
NUMPY_TYPES = {
    "BOOL": "bool",
    "UINT8": "uint8",
    "UINT16": "uint16",
    "UINT32": "uint32",
    "UINT64": "uint64",
    "INT8": "int8",
    "INT16": "int16",
    "INT32": "int32",
    "INT64": "int64",
    "FP16": "float16",
    "FP32": "float32",
    "FP64": "float64",
}
DATATYPES = {np.dtype(numpy): v2 for v2, numpy in NUMPY_TYPES.items()}
_SCALAR_DATATYPES = {"number": "FP64", "integer": "INT64", "boolean": "BOOL", "string": "BYTES"}
UNKNOWN_RANK: dict[str, Any] = {"shape": [-1], "parameters": {"unknown_rank": True, "max_rank": MAX_JSON_DIMS}}
_PYTHON_KINDS = {"string": str, "array": list}


def _declared_datatype(codec: Codec) -> str:
    """The v2 datatype a parameter is documented with: its JSON type's, a tensor's declared dtype or FP32 (an
    undeclared tensor gets whatever numeric datatype a request declares), BYTES for JSON text."""
    if isinstance(codec, TensorCodec):
        if codec.spec.dtype == bfloat16.NAME:
            return "BF16"
        return DATATYPES[np.dtype(codec.spec.dtype)] if codec.spec.dtype else "FP32"
    schema = codec.json_schema()
    if schema.get("type") == "array":
        schema = schema.get("items", {})
    return _SCALAR_DATATYPES.get(schema.get("type", ""), "BYTES")


def input_metadata(name: str, codec: Codec) -> dict[str, Any]:
    """One input's metadata: a tensor's declared shape, else any rank; ``[-1]`` for a list, any rank for a type
    that admits nested lists of any depth (``Any``); else ``[1]``, one element."""
    metadata = {"name": name, "datatype": _declared_datatype(codec)}
    if isinstance(codec, TensorCodec):
        return metadata | ({"shape": list(codec.spec.shape)} if codec.spec.shape is not None else UNKNOWN_RANK)
    schema = codec.json_schema()
    if schema.get("type") == "array":
        return metadata | {"shape": [-1]}
    return metadata | (UNKNOWN_RANK if admits(schema, "array") else {"shape": [1]})


def admits(schema: dict[str, Any], kind: str, defs: dict[str, Any] | None = None) -> bool:
    """Whether a value of JSON type ``kind`` may validate against ``schema`` (an empty schema admits anything)."""
    defs = schema.get("$defs", defs or {})
    if "$ref" in schema:
        return admits(defs.get(schema["$ref"].rsplit("/", 1)[-1], {}), kind, defs)
    branches = schema.get("anyOf") or schema.get("oneOf")
    if branches:
        return any(admits(branch, kind, defs) for branch in branches)
    declared = schema.get("type")
    if declared is None:
        values = schema.get("enum", [schema["const"]] if "const" in schema else None)
        if values is None:  # no type at all: anything
            return True
        return any(isinstance(v, _PYTHON_KINDS[kind]) for v in values)
    return kind in declared if isinstance(declared, list) else declared == kind


def _declared_output(codec: Codec) -> dict[str, Any]:
    """The datatype and shape an output's hint declares, as infer writes them: a tensor's DType and Shape; a
    number ``[]``, text ``[1]``, nested lists of one scalar type ``[-1, ...]``, other JSON one BYTES element
    (``[1]``). Whatever the hint leaves open (a tensor without DType or Shape, ``Any``, a union) is absent."""
    if isinstance(codec, TensorCodec):
        declared: dict[str, Any] = {"datatype": _declared_datatype(codec)} if codec.spec.dtype else {}
        return declared | ({"shape": list(codec.spec.shape)} if codec.spec.shape is not None else {})
    schema, depth = codec.json_schema(), 0
    while schema.get("type") == "array" and isinstance(schema.get("items"), dict):
        schema, depth = schema["items"], depth + 1
    kind = schema.get("type")
    if kind in _SCALAR_DATATYPES:
        shape = [-1] * depth if depth else [1] if kind == "string" else []
        return {"datatype": _SCALAR_DATATYPES[kind], "shape": shape}
    if kind == "object" or (depth and kind is not None):
        return {"datatype": "BYTES", "shape": [1]}
    return {}


def output_metadata(codec: Codec, produced: dict[str, Any] | None) -> dict[str, Any]:
    """The output's metadata: what its hint declares; what the hint leaves open, the ``produced`` datatype and
    rank of the last answer (every size -1), or before any answer FP32 for a tensor (BYTES for any other value)
    of any rank. A shape the hint leaves open keeps ``unknown_rank``: the last answer's rank binds no other."""
    declared = _declared_output(codec)
    known = {**(produced or {}), **declared}
    if "shape" not in declared:  # the last answer's rank, if any, is no promise: the next may have another
        known = UNKNOWN_RANK | known
    return {"name": "output", "datatype": "FP32" if isinstance(codec, TensorCodec) else "BYTES"} | known


def as_metadata(
    output: dict[str, Any], metadata: dict[str, Any], last_shape: list[int] | None, batch_dim: int, exact: bool
) -> dict[str, Any]:
    """``output`` in the datatype and rank ``metadata`` gives where its values cannot say otherwise: an empty
    answer that was no array (JSON's ``[]``, FP64 ``[0]``; the sizes but ``batch_dim``'s, which is 0, those of the
    last answer or declared), or float32 holding the bfloat16 values a BF16 output declares. An ``exact`` answer
    (an array) keeps its own datatype and shape."""
    if 0 in output["shape"] and not exact:
        output["datatype"] = metadata["datatype"]
        if "unknown_rank" in metadata.get("parameters", {}) and last_shape is None:
            return output
        shape = [max(size, 0) for size in metadata["shape"]]
        if last_shape is not None and len(last_shape) == len(shape):
            shape = [size if size >= 0 else last for size, last in zip(metadata["shape"], last_shape, strict=True)]
        if shape:
            shape[min(batch_dim, len(shape) - 1)] = 0
        output["shape"] = shape
    elif metadata["datatype"] == "BF16" and output["datatype"] == "FP32":
        output["datatype"] = "BF16"
    return output
