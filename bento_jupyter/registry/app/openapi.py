"""The OpenAPI 3.1 document of the registry API, generated from its table of operations."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from bento_jupyter._version import __version__
from bento_jupyter.registry.records import ErrorBody
from bento_jupyter.registry.validation import RECORD_ID_PATTERN

if TYPE_CHECKING:
    from bento_jupyter.registry.app.operations import Operation

_ERRORS = {
    "400": "Invalid name, tag, digest, manifest or body",
    "401": "Missing, unknown or revoked token",
    "403": "The token's scope does not allow this",
    "404": "No such bento, version, alias, blob or token",
    "409": "Compare-and-set lost, or blobs missing for a publish",
    "413": "Body over the size limit",
}
# Operations whose body is content-addressed: a request can match the schema and still not hold together
# (the bytes or the manifest hash to another digest), which no JSON Schema can state; that answer is a 422.
CONTENT_ADDRESSED = {
    "publish": "The manifest does not hold together: its digest does not match its content",
    "put_blob": "The body's sha256 is not the one in the path",
}


_NAME = "[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?"
_VERSION = {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}
# What each path parameter accepts; requests outside these get 400 (checked in refs.py, the one place).
PATH_PARAMETERS: dict[str, dict[str, Any]] = {
    "name": {"type": "string", "pattern": f"^{_NAME}$"},
    "ref": {"type": "string", "pattern": "^(latest|[1-9][0-9]{0,8})$"},
    "alias": {"type": "string", "pattern": f"^(?!latest$)(?![0-9]+$){_NAME}$"},
    "tag": {"type": "string", "pattern": f"^(?!latest$)(?![0-9]+$){_NAME}$"},
    "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
    "delivery_id": {"type": "string", "pattern": "^[1-9][0-9]{0,8}$"},
    "hook_id": {"type": "string", "pattern": f"^{RECORD_ID_PATTERN.pattern}$"},
    "token_id": {"type": "string", "pattern": f"^{RECORD_ID_PATTERN.pattern}$"},
}


_NUMBER = {"type": "string", "pattern": "^[1-9][0-9]{0,8}$"}
# Operations on a numbered version only: their ``ref`` is never ``latest``.
NUMBERED_REF = {"delete_version", "put_tag", "delete_tag", "post_verification"}
_NO_NUL = "^[^\\x00]*$"  # free text: PostgreSQL text holds no NUL
_SEARCH_TEXT = {"type": "string", "pattern": _NO_NUL, "maxLength": 1024}
# Query parameters by operation (operationId): name -> (schema, required).
QUERIES: dict[str, dict[str, tuple[dict[str, Any], bool]]] = {
    "compare_versions": {"from": (_NUMBER, True), "to": (_NUMBER, True)},
    "get_history": {"alias": (PATH_PARAMETERS["alias"], False)},
    "search": {
        "notebook": (_SEARCH_TEXT, False),
        "cell": (_SEARCH_TEXT, False),
        "commit": (_SEARCH_TEXT, False),
        "tag": (_SEARCH_TEXT, False),
        "name": (PATH_PARAMETERS["name"], False),
    },
}
_COMPONENTS = "#/components/schemas/{model}"


def component_schemas(operations: list[Operation]) -> dict[str, dict[str, Any]]:
    """The JSON Schemas of every record the operations answer with or parse their body into (and of an error), by
    name: what the records validate is what the document states."""
    answered: set[type[BaseModel]] = {ErrorBody, *(op.result for op in operations if op.result is not None)}
    answered |= {op.request for op in operations if op.request is not None}
    records = sorted(answered, key=lambda record: record.__name__)
    _, schemas = models_json_schema([(record, "validation") for record in records], ref_template=_COMPONENTS)
    return dict(schemas["$defs"])


def _ref(record: type[BaseModel]) -> dict[str, str]:
    return {"$ref": _COMPONENTS.format(model=record.__name__)}


def _operation(op: Operation) -> dict[str, Any]:
    operation_id = op.handler.__name__
    doc: dict[str, Any] = {
        "operationId": operation_id,
        "summary": op.summary,
        "parameters": [
            {"name": p, "in": "path", "required": True, "schema": _path_parameter(operation_id, p)}
            for p in re.findall(r"{(\w+)}", op.path)
        ]
        + [
            {"name": p, "in": "query", "required": required, "schema": schema}
            for p, (schema, required) in QUERIES.get(operation_id, {}).items()
        ],
        "responses": {
            "200": {"description": "OK", **_result(op)},
            "201": {"description": "Created (a version, blob, token or webhook)", **_result(op)},
            "202": {"description": "Accepted (a delivery queued)", **_result(op)},
            "204": {"description": "Done, nothing to return"},
            **{
                code: {
                    "description": text,
                    "content": {"application/json": {"schema": _ref(ErrorBody)}},
                }
                for code, text in _ERRORS.items()
            },
        },
    }
    if operation_id in CONTENT_ADDRESSED:
        doc["responses"]["422"] = {
            "description": CONTENT_ADDRESSED[operation_id],
            "content": {"application/json": {"schema": _ref(ErrorBody)}},
        }
    if op.scope is None:
        doc["security"] = []
    else:
        doc["security"] = [{"bearer": []}]
        doc["x-scope"] = str(op.scope)
        doc["description"] = f"Needs a token with {op.scope} scope (or higher)."
    if op.request is not None:
        doc["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(op.request)}}}
    elif op.binary:
        doc["requestBody"] = {
            "required": True,
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        }
    return doc


def _path_parameter(operation_id: str, name: str) -> dict[str, Any]:
    if name == "ref" and operation_id in NUMBERED_REF:
        return _NUMBER
    return PATH_PARAMETERS.get(name, {"type": "string"})


def _result(op: Operation) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": _ref(op.result)}}} if op.result is not None else {}


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
            "schemas": component_schemas(operations),
        },
        "security": [{"bearer": []}],
    }
