"""The service's self-description: BentoML's ``/schema.json`` and an OpenAPI 3 document."""

from __future__ import annotations

from typing import Any

from bento_jupyter.service.definition import APIMethod, ServiceDefinition


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


def service_schema(definition: ServiceDefinition) -> dict[str, Any]:
    """``/schema.json`` in the shape ``bentoml.SyncHTTPClient`` reads."""
    routes = []
    for method in definition.apis.values():
        route = {
            "name": method.name,
            "route": method.route,
            "batchable": method.config.batchable,
            "input": _input_schema(method),
            "output": method.output.json_schema(),
            "is_task": False,
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


def _openapi_value(schema: dict[str, Any]) -> dict[str, Any]:
    """Tensors travel as nested JSON lists of numbers; other schemas are already JSON Schema."""
    if schema.get("type") == "tensor":
        return {
            "type": "array",
            "items": {},
            "description": f"{schema['format']} as nested lists of numbers",
        }
    return schema


_ERROR = {
    "description": "Error",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"error": {"type": "string"}, "field": {"type": "string"}},
                "required": ["error"],
            }
        }
    },
}
_PROBE = {"responses": {"200": {"description": "OK"}}}


def _operation(method: APIMethod) -> dict[str, Any]:
    body = _input_schema(method)
    body["properties"] = {k: _openapi_value(v) for k, v in body["properties"].items()}
    output = method.output.json_schema()
    media = "text/plain" if output.get("type") == "string" else "application/json"
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
            "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
            "responses": {
                "200": {"description": "Result", "content": {media: {"schema": _openapi_value(output)}}},
                "400": _ERROR,
                "413": _ERROR,
                "415": _ERROR,
                "500": _ERROR,
                "503": _ERROR,
            },
        }
    }


def openapi_document(definition: ServiceDefinition, version: str) -> dict[str, Any]:
    """OpenAPI 3 for ``/docs.json`` and the Swagger UI."""
    paths: dict[str, Any] = {route: _operation(method) for route, method in definition.apis.items()}
    for probe in ("/readyz", "/livez", "/healthz", "/metrics"):
        paths[probe] = {"get": {**_PROBE, "operationId": probe.strip("/"), "tags": ["Infrastructure"]}}
    return {
        "openapi": "3.0.2",
        "info": {"title": definition.name, "version": version, "description": "Served by bento_jupyter"},
        "paths": paths,
    }
