"""The OpenAPI 3.1 document of the registry API, generated from its table of operations."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from bento_jupyter import __version__

if TYPE_CHECKING:
    from bento_jupyter.registry.api import Operation

_ERROR_SCHEMA = {
    "type": "object",
    "properties": {"error": {"type": "string"}, "code": {"type": "string"}},
    "required": ["error", "code"],
}
_ERRORS = {
    "400": "Invalid name, tag, digest, manifest or body",
    "401": "Missing, unknown or revoked token",
    "403": "The token's scope does not allow this",
    "404": "No such bento, version, alias, blob or token",
    "409": "Compare-and-set lost, or blobs missing for a publish",
    "413": "Body over the size limit",
}


def _operation(op: Operation) -> dict[str, Any]:
    params = re.findall(r"{(\w+)}", op.path)
    doc: dict[str, Any] = {
        "operationId": op.handler.__name__,
        "summary": op.summary,
        "parameters": [{"name": p, "in": "path", "required": True, "schema": {"type": "string"}} for p in params],
        "responses": {
            "200": {"description": "OK"},
            **{
                code: {
                    "description": text,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                }
                for code, text in _ERRORS.items()
            },
        },
    }
    if op.scope is None:
        doc["security"] = []
    else:
        doc["security"] = [{"bearer": []}]
        doc["x-scope"] = str(op.scope)
        doc["description"] = f"Needs a token with {op.scope} scope (or higher)."
    if op.body == "json":
        doc["requestBody"] = {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}
    elif op.body == "binary":
        doc["requestBody"] = {
            "required": True,
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        }
    return doc


def openapi_document(operations: list[Operation]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "bento-jupyter registry",
            "version": __version__,
            "description": "Immutable bento versions with notebook lineage, aliases, tags, history and "
            "content-addressed blobs.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": _ERROR_SCHEMA},
        },
        "security": [{"bearer": []}],
    }
