"""Triton's binary tensor data extension to Open Inference Protocol v2 (tritonclient's default).

A body is a JSON header of ``Inference-Header-Content-Length`` bytes followed by the raw data of each tensor
whose ``parameters.binary_data_size`` is given, in the order the tensors are listed: little-endian, row major,
BOOL one byte per element, BYTES each element a 4-byte little-endian length then its bytes, BF16 the upper
half of a float32. Answers use the same framing for outputs asked for with ``binary_data`` (per output) or
``binary_data_output`` (the whole request).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson

from bento_jupyter.errors import InvalidInput
from bento_jupyter.server.open_inference_metadata import NUMPY_TYPES
from bento_jupyter.service.bfloat16 import from_bfloat16_bits, to_bfloat16_bits
from bento_jupyter.service.json_values import dumps, json_ready

HEADER_LENGTH = "inference-header-content-length"
EXTENSION = "binary_tensor_data"
_LENGTH = struct.Struct("<I")


def split_body(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """The JSON header and the binary data that follows it (empty without the header)."""
    if header_length is None:
        return body, b""
    if not header_length.isdigit() or int(header_length) > len(body):
        raise InvalidInput(
            "Inference-Header-Content-Length", f"{header_length!r} is not a length within the body ({len(body)} bytes)"
        )
    return body[: int(header_length)], body[int(header_length) :]


def binary_size(tensor: dict[str, Any], field: str) -> int | None:
    """The tensor's ``binary_data_size`` parameter, None when its data is JSON."""
    parameters = tensor.get("parameters")
    size = parameters.get("binary_data_size") if isinstance(parameters, dict) else None
    if size is None:
        return None
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidInput(field, f"binary_data_size must be a non-negative integer, got {size!r}")
    return size


def chunks(tensors: list[dict[str, Any]], binary: bytes) -> Iterator[bytes | None]:
    """Each tensor's raw data in order (None for JSON data); InvalidInput names the tensor whose size the body
    cannot hold, or the data left over."""
    offset = 0
    for tensor in tensors:
        field = str(tensor.get("name"))
        size = binary_size(tensor, field)
        if size is None:
            yield None
            continue
        if offset + size > len(binary):
            raise InvalidInput(
                field, f"binary_data_size {size} runs past the body ({len(binary) - offset} bytes of binary data left)"
            )
        yield binary[offset : offset + size]
        offset += size
    if offset != len(binary):
        raise InvalidInput("inputs", f"{len(binary) - offset} bytes of binary data follow the last binary input")


def from_bytes(raw: bytes, datatype: str, shape: list[int], numpy_type: str | None, field: str) -> np.ndarray:
    """The flat array a binary tensor holds (BF16 widened to float32, BYTES an object array of str)."""
    count = math.prod(shape)
    if datatype == "BYTES":
        return np.array(_byte_elements(raw, count, field), dtype=object)
    itemsize = 2 if datatype == "BF16" else np.dtype(numpy_type).itemsize
    if len(raw) != count * itemsize:
        raise InvalidInput(field, f"{len(raw)} bytes of {datatype} data, but shape {shape} needs {count * itemsize}")
    if datatype == "BF16":
        return from_bfloat16_bits(np.frombuffer(raw, "<u2"))
    if datatype == "BOOL":
        bytes_ = np.frombuffer(raw, np.uint8)
        if (bytes_ > 1).any():
            raise InvalidInput(field, "BOOL data must be bytes 0 or 1")
        return bytes_.astype(bool)
    return np.frombuffer(raw, np.dtype(numpy_type).newbyteorder("<")).astype(numpy_type)


def _byte_elements(raw: bytes, count: int, field: str) -> list[str]:
    elements, offset = [], 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise InvalidInput(field, "BYTES data ends inside an element's 4-byte length")
        (length,) = _LENGTH.unpack_from(raw, offset)
        offset += 4
        if offset + length > len(raw):
            raise InvalidInput(field, f"a BYTES element of {length} bytes runs past the data")
        try:
            elements.append(raw[offset : offset + length].decode())
        except UnicodeDecodeError:
            raise InvalidInput(field, f"BYTES element {len(elements)} is not UTF-8 text") from None
        offset += length
    if len(elements) != count:
        raise InvalidInput(field, f"BYTES data holds {len(elements)} elements but the shape needs {count}")
    return elements


def to_bytes(datatype: str, data: Any, numpy_type: str | None) -> bytes:
    """The raw data of an output tensor's ``data`` (a flat array, or a list of str for BYTES)."""
    if datatype == "BYTES":
        encoded = [item.encode() if isinstance(item, str) else bytes(item) for item in data]
        return b"".join(_LENGTH.pack(len(item)) + item for item in encoded)
    if datatype == "BF16":
        return to_bfloat16_bits(np.asarray(data, np.float32)).astype("<u2").tobytes()
    return np.ascontiguousarray(data, np.dtype(numpy_type).newbyteorder("<")).tobytes()


def wants_binary(request: dict[str, Any], output: str) -> bool:
    """Whether ``output`` is asked for as binary data: its own ``binary_data``, else the request's
    ``binary_data_output``."""
    for requested in request.get("outputs") or []:
        parameters = requested.get("parameters") if isinstance(requested, dict) else None
        if requested.get("name") == output and isinstance(parameters, dict) and "binary_data" in parameters:
            return parameters["binary_data"] is True
    parameters = request.get("parameters")
    return isinstance(parameters, dict) and parameters.get("binary_data_output") is True


def json_data(data: Any) -> Any:
    """A tensor's ``data`` as v2 JSON writes it: float16 values in float16's shortest form (orjson would write
    float32's), anything else as it is."""
    if isinstance(data, np.ndarray) and data.dtype == np.float16:
        return json_ready(data)
    return data


def as_json(body: bytes, header_length: int | None) -> bytes:
    """A v2 body (request or answer) with every binary tensor's data written as JSON ``data`` and no binary
    parameter left: what the same exchange is on the all-JSON route (a body without binary data is returned as
    it is). ValueError or InvalidInput for a body that is no v2 JSON."""
    if header_length is None:
        return body
    header, binary = split_body(body, str(header_length))
    document = orjson.loads(header)
    tensors = [*(document.get("inputs") or []), *(document.get("outputs") or [])]  # a request's or an answer's
    for tensor, raw in zip(tensors, list(chunks(tensors, binary)), strict=True):
        parameters = tensor.get("parameters") or {}
        parameters.pop("binary_data", None)
        if raw is not None:
            parameters.pop("binary_data_size", None)
            datatype = tensor["datatype"]
            flat = from_bytes(raw, datatype, tensor["shape"], NUMPY_TYPES.get(datatype), "data")
            tensor["data"] = json_data(flat)
        if "parameters" in tensor and not parameters:
            del tensor["parameters"]
    parameters = document.get("parameters") or {}
    parameters.pop("binary_data_output", None)
    if "parameters" in document and not parameters:
        del document["parameters"]
    return dumps(document)
