"""Types pydantic validates by ``isinstance`` alone (``arbitrary_types_allowed``: ``np.ndarray``, ``torch.Tensor``,
a user's class): the JSON Schema we give them, and where a request could never hold one."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from bento_jupyter.service.tensor_schema import result_tensor_schema
from bento_jupyter.torch_probe import is_tensor_type


class ServiceJsonSchema(GenerateJsonSchema):
    """pydantic's JSON Schema, with a tensor inside a model or container documented as a result's tensor, and
    any other arbitrary type as any JSON value (it is written as its value allows)."""

    def is_instance_schema(self, schema: core_schema.IsInstanceSchema) -> JsonSchemaValue:
        cls = schema["cls"]
        if cls is np.ndarray:
            return result_tensor_schema("numpy")
        if is_tensor_type(cls):
            return result_tensor_schema("torch")
        return {"description": f"a {getattr(cls, '__name__', cls)}, written as JSON as its value allows"}


def arbitrary_field(schema: Any, path: str = "") -> tuple[str, type] | None:
    """The dotted field (``Model.field``, from the innermost model) and class of the first type in a core schema
    that only ``isinstance`` validates, which no JSON value can be; None when there is none."""
    if isinstance(schema, (list, tuple)):
        return next((found for item in schema if (found := arbitrary_field(item, path))), None)
    if not isinstance(schema, dict):
        return None
    if schema.get("type") == "is-instance":
        return path, schema["cls"]
    if schema.get("type") in ("model", "dataclass", "typed-dict") and "cls" in schema:
        path = schema["cls"].__name__
    for key, value in schema.items():
        if key in ("metadata", "cls", "config"):
            continue
        if key == "fields" and isinstance(value, dict):  # a model's or TypedDict's fields, by name
            found = next((f for name, v in value.items() if (f := arbitrary_field(v, f"{path}.{name}"))), None)
        elif key == "fields" and isinstance(value, list):  # a dataclass's arguments, or (strings) its field names
            found = next((f for v in value if (f := arbitrary_field(v, _field_path(path, v)))), None)
        else:
            found = arbitrary_field(value, path)
        if found:
            return found
    return None


def _field_path(path: str, field: Any) -> str:
    """``path.name`` for a dataclass argument's core schema (a dict naming its field); ``path`` for anything else
    (a dataclass schema lists its field names as plain strings, which hold no type)."""
    return f"{path}.{field.get('name')}" if isinstance(field, dict) else path
