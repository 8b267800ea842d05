"""The service's self-description: BentoML's ``/schema.json`` and an OpenAPI 3 document."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from typing import Annotated, Any

import orjson
from pydantic import TypeAdapter, WithJsonSchema
from pydantic.json_schema import JsonSchemaMode, JsonSchemaValue
from pydantic_core import core_schema, to_jsonable_python

from bento_jupyter.service.arbitrary_types import ServiceJsonSchema
from bento_jupyter.service.codecs import Codec, TensorCodec
from bento_jupyter.service.definition import APIMethod, ServiceDefinition
from bento_jupyter.service.json_values import NON_FINITE_SCHEMA
from bento_jupyter.service.task_status import TaskStatus
from bento_jupyter.service.tensor_schema import request_tensor_schema, result_tensor_schema

_MAX_EXAMPLE_BYTES = 8192
_PREFIX = re.compile(r"^(/[A-Za-z0-9._~%!$&'()*+,;=:@-]+)+$")

SSE_MEDIA_TYPE = "text/event-stream"
NDJSON_MEDIA_TYPE = "application/x-ndjson"


def _input_schema(method: APIMethod) -> dict[str, Any]:
    properties = {}
    for p in method.params:
        prop = {"title": p.name.replace("_", " ").title(), **p.codec.json_schema()}
        if not p.required:
            prop["default"] = p.default
        properties[p.name] = prop
    return {
        "title": "Input",
        "type": "object",
        "properties": properties,
        "required": [p.name for p in method.params if p.required],
    }


def _output_schema(method: APIMethod) -> dict[str, Any]:
    """The result's schema; for a stream, each item's, flagged as BentoML flags it."""
    output = method.output.json_schema()
    if method.is_stream:
        output = {**output, "is_stream": True, "media_type": SSE_MEDIA_TYPE}
    return output


def service_schema(definition: ServiceDefinition) -> dict[str, Any]:
    """``/schema.json`` in the shape ``bentoml.SyncHTTPClient`` reads."""
    routes = []
    for method in definition.apis.values():
        route = {
            "name": method.name,
            "route": method.route,
            "batchable": method.config.batchable,
            "input": _input_schema(method),
            "output": _output_schema(method),
            "is_task": method.config.task,
        }
        if method.func.__doc__:
            route["description"] = method.func.__doc__.strip()
        routes.append(route)
    return {
        "name": definition.name,
        "type": "service",
        "routes": routes,
        "paths": {route["route"]: {"mounted": False} for route in routes},
    }


def _tensor_schema(codec: TensorCodec, components: dict[str, Any]) -> dict[str, Any]:
    """A tensor in a request, as the server accepts it; one of undeclared shape is a ``$ref`` to one schema per
    framework and dtype under ``components``."""
    schema = request_tensor_schema(codec.framework, codec.spec)
    if codec.spec.shape is not None:
        return schema
    name = {"numpy": "NumpyArray", "torch": "TorchTensor"}[codec.framework] + (codec.spec.dtype or "").title()
    components[name] = schema
    return {"$ref": f"#/components/schemas/{name}"}


def example_request(method: APIMethod, body: bytes) -> dict[str, Any] | None:
    """A request body that ``method`` answered, cut to one item of a batch, for the docs' pre-filled
    example; None when it is not a JSON object or too big to show (over 8 KiB)."""
    try:
        payload = orjson.loads(body) if body else {}
    except orjson.JSONDecodeError:  # a form-encoded curl body that happened to parse elsewhere
        return None
    if not isinstance(payload, dict):
        return None
    batch = payload.get(method.params[0].name) if method.config.batchable and method.params else None
    if isinstance(batch, list) and method.config.batch_dim == 0:
        payload[method.params[0].name] = batch[:1]
    return payload if len(orjson.dumps(payload)) <= _MAX_EXAMPLE_BYTES else None


def server_url(forwarded_prefix: str | None) -> str:
    """The ``servers`` URL: the path a proxy (jupyter-server-proxy's ``X-Forwarded-Prefix``) serves us
    under, so Swagger's "Try it out" posts through it; ``/`` when reached directly."""
    prefix = (forwarded_prefix or "").rstrip("/")
    return prefix if _PREFIX.match(prefix) else "/"


JSON = "application/json"
_ERROR = {
    "description": "Error",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "error": {"type": "string"},
                    "field": {"type": "string"},
                    "item": {"type": "integer", "description": "a stream's item (0 for the first) that failed"},
                },
                "required": ["error"],
            }
        }
    },
}
_PROBE = {"responses": {"200": {"description": "OK"}}}


class _DocumentSchemas(ServiceJsonSchema):
    """Pydantic's JSON Schema, with a float result also allowed to be one of the strings that stand for
    NaN and ±Infinity (``json_values``); requests keep plain numbers."""

    def float_schema(self, schema: core_schema.FloatSchema) -> JsonSchemaValue:
        number = super().float_schema(schema)
        return {"anyOf": [number, NON_FINITE_SCHEMA]} if self.mode == "serialization" else number


def _result_annotation(codec: Codec) -> Any:
    """What a result is documented as: a tensor's nested lists (a 0-d one is a number or boolean), whose floats
    may be the strings that stand for NaN and ±Infinity."""
    if not isinstance(codec, TensorCodec):
        return codec.annotation
    return Annotated[Any, WithJsonSchema(result_tensor_schema(codec.framework, codec.spec))]


def _schemas(definition: ServiceDefinition) -> tuple[dict[tuple[str, str], Any], dict[str, Any]]:
    """Each API's request body (inline) and result schema; the named types they use pooled under
    ``components/schemas``, a type that reads differently in requests and results as ``Name-Input``
    and ``Name-Output``."""
    wanted: list[tuple[str, JsonSchemaMode, TypeAdapter[Any]]] = []
    for method in definition.apis.values():
        wanted.append((method.name, "validation", method.inputs))
        wanted.append((method.name, "serialization", TypeAdapter(_result_annotation(method.output))))
    schemas, pooled = TypeAdapter.json_schemas(
        wanted, ref_template="#/components/schemas/{model}", schema_generator=_DocumentSchemas
    )
    components = pooled.get("$defs", {})
    found: dict[tuple[str, str], Any] = {}
    for (name, mode), schema in schemas.items():
        if mode == "validation":  # the body's own TypedDict is used nowhere else: inline it
            schema = components.pop(schema["$ref"].rsplit("/", 1)[-1])
        found[(name, mode)] = schema
    return found, components


def _request_body(method: APIMethod, schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    """The body schema with the handler's defaults, and tensors as nested lists of any depth."""
    properties = schema.get("properties", {})
    for p in method.params:
        if p.name not in properties:
            continue
        if isinstance(p.codec, TensorCodec):
            properties[p.name] = _tensor_schema(p.codec, components)
        if not p.required:
            with contextlib.suppress(Exception):
                properties[p.name]["default"] = to_jsonable_python(p.default)
    return schema


def _sse_event(method: APIMethod, item: dict[str, Any]) -> dict[str, Any]:
    """One event of a stream, as OpenAPI 3.1 describes ``text/event-stream`` (a schema per event): its data
    is the item (text as it is, anything else as JSON), or ``{"error"}`` in the ``error`` event that ends
    a failed stream."""
    text = method.output.json_schema().get("type") == "string"
    data: dict[str, Any] = {"type": "string"}
    if not text:
        data |= {"contentMediaType": "application/json", "contentSchema": item}
    return {
        "type": "object",
        "properties": {
            "event": {"type": "string", "enum": ["message", "error"]},
            "id": {"type": "string"},
            "data": data,
        },
        "required": ["data"],
    }


def _operation(
    method: APIMethod,
    body: dict[str, Any],
    output: dict[str, Any],
    example: Mapping[str, Any] | None,
    components: dict[str, Any],
) -> dict[str, Any]:
    example = example or {}
    content: dict[str, Any] = {"schema": _request_body(method, body, components)}
    if example:
        content["example"] = example
    media = "text/plain" if method.output.json_schema().get("type") == "string" else "application/json"
    result: dict[str, Any] = {"description": "Result", "content": {media: {"schema": output}}}
    errors = {"400": _ERROR, "405": _ERROR, "413": _ERROR, "415": _ERROR, "500": _ERROR, "503": _ERROR}
    if method.is_stream:
        errors["406"] = _ERROR
        result = {
            "description": "A stream of items, each sent as soon as the handler yields it, framed as the request's"
            f" Accept prefers (q-values count): one Server-Sent Event per item (an `error` event ends a failed"
            f" stream), one JSON line per item ({NDJSON_MEDIA_TYPE}), or all items as one JSON array once the"
            " handler is done (application/json). 406 when Accept takes none of these.",
            "content": {
                SSE_MEDIA_TYPE: {"schema": _sse_event(method, output)},
                NDJSON_MEDIA_TYPE: {"schema": output},
                "application/json": {"schema": {"type": "array", "items": output}},
            },
        }
    extra = ""
    if method.config.batchable:
        extra = (
            f" Batched: up to {method.config.max_batch_size} items per model call,"
            f" {method.config.max_latency_ms:g} ms queueing budget."
        )
    return {
        "post": {
            "operationId": method.name,
            "summary": (method.func.__doc__ or method.name).strip().splitlines()[0],
            "description": f"Calls {method.name}().{extra}",
            # All parameters have defaults: no body at all is a call with the defaults.
            "requestBody": {
                "required": any(p.required for p in method.params),
                "content": {"application/json": content},
            },
            "responses": {"200": result, **dict(sorted(errors.items()))},
        }
    }


_TASK_STATUS = {
    "description": "The task's status",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "title": "TaskStatusResponse",
                "properties": {
                    "task_id": {"type": "string"},
                    "status": {"type": "string", "enum": [s.value for s in TaskStatus]},
                    "created_at": {"type": "string", "format": "date-time"},
                    "executed_at": {"type": ["string", "null"], "format": "date-time"},
                    "completed_at": {"type": ["string", "null"], "format": "date-time"},
                    "cancel_requested": {"type": "boolean"},
                },
                "required": ["task_id", "status", "created_at", "executed_at"],
            }
        }
    },
}
_TASK_ID = [
    {
        "name": "task_id",
        "in": "query",
        "required": True,
        "schema": {"type": "string", "title": "Task ID", "minLength": 1},
    }
]


def _task_operations(method: APIMethod, call: dict[str, Any]) -> dict[str, Any]:
    """BentoML's five task routes beside a task API's own route, ``call`` being that route's operation."""
    errors = {code: _ERROR for code in ("400", "404", "500")}

    def operation(verb: str, suffix: str, description: str, answer: dict[str, Any], **extra: Any) -> dict[str, Any]:
        op = {"operationId": f"{method.name}_{suffix}", "description": description, "tags": ["Tasks"], **extra}
        return {verb: {**op, "responses": {"200": answer, **errors, **extra.pop("responses", {})}}}

    submit = operation(
        "post",
        "submit",
        f"Store a task of {method.name}() and answer at once with its id; 503 with Retry-After when the queue is full.",
        _TASK_STATUS,
        requestBody=call["post"]["requestBody"],
    )
    submit["post"]["responses"]["503"] = _ERROR
    by_id = {"parameters": _TASK_ID}
    return {
        f"{method.route}/submit": submit,
        f"{method.route}/status": operation("get", "status", "The task's status.", _TASK_STATUS, **by_id),
        f"{method.route}/get": operation(
            "get",
            "get",
            "The finished task's answer (a failed task's error, with its status).",
            call["post"]["responses"]["200"],
            **by_id,
        ),
        f"{method.route}/cancel": operation(
            "put", "cancel", "Cancel a pending task; ask a running one to stop.", _TASK_STATUS, **by_id
        ),
        f"{method.route}/retry": operation(
            "post", "retry", "Submit a finished task's request again, as a new task.", _TASK_STATUS, **by_id
        ),
    }


def openapi_document(
    definition: ServiceDefinition,
    version: str,
    examples: Mapping[str, Mapping[str, Any]] | None = None,
    base: str = "/",
) -> dict[str, Any]:
    """OpenAPI 3.1 for ``/docs.json`` and the Swagger UI: ``examples`` maps a route to a request body it
    answered (see ``example_request``), ``base`` is the ``servers`` URL (see ``server_url``)."""
    examples = examples or {}
    schemas, components = _schemas(definition)
    paths: dict[str, Any] = {}
    for route, m in definition.apis.items():
        paths[route] = _operation(
            m, schemas[(m.name, "validation")], schemas[(m.name, "serialization")], examples.get(route), components
        )
        if m.config.task:
            paths.update(_task_operations(m, paths[route]))
    for probe in ("/readyz", "/livez", "/healthz", "/metrics"):
        paths[probe] = {"get": {**_PROBE, "operationId": probe.strip("/"), "tags": ["Infrastructure"]}}
    return {
        "openapi": "3.1.0",
        "info": {"title": definition.name, "version": version, "description": "Served by bento_jupyter"},
        "servers": [{"url": base}],
        "paths": paths,
        "components": {"schemas": components},
    }
