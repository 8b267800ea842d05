"""The registry's OpenAPI document is valid OpenAPI 3.1, its answers carry the typed records' JSON Schemas, and a real
registry's answers match them (and read back into the records a client uses)."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from bento_jupyter.registry.app.openapi import openapi_document
from bento_jupyter.registry.app.routes import OPERATIONS
from bento_jupyter.registry.records import DeliveryList, Record
from tests.registry.conftest import make_bento

pytestmark = pytest.mark.integration


def test_the_document_is_valid_openapi_and_every_typed_answer_refers_to_its_record():
    document = openapi_document(OPERATIONS)
    validate(document)
    schemas = document["components"]["schemas"]
    for op in OPERATIONS:
        answer = document["paths"][op.path][op.method.lower()]["responses"]["200"]
        if op.result is None:
            continue
        assert answer["content"]["application/json"]["schema"] == {"$ref": f"#/components/schemas/{op.result.__name__}"}
        assert schemas[op.result.__name__]["type"] == "object" and schemas[op.result.__name__]["required"]
    detail = schemas["VersionDetail"]["properties"]["manifest"]
    assert detail == {"$ref": "#/components/schemas/BentoManifest"}  # a version's manifest is typed, not "object"
    assert {"apis", "files", "models", "lineage"} <= set(schemas["BentoManifest"]["properties"])


def _validator(document: dict[str, Any], record: type[Record]) -> jsonschema.Draft202012Validator:
    resource = Resource.from_contents(document, default_specification=DRAFT202012)
    registry: Registry = Registry().with_resource("urn:registry-openapi", resource)
    schema = {"$ref": f"urn:registry-openapi#/components/schemas/{record.__name__}"}
    return jsonschema.Draft202012Validator(schema, registry=registry)


def test_every_typed_answer_of_a_real_registry_matches_its_documented_schema(sqlite_registry, local, name):
    from bento_jupyter.registry.client.remote import push

    make_bento(local, name)
    push(name, sqlite_registry.url, sqlite_registry.tokens["write"], store=local)
    make_bento(local, name, handler="def predict(x, y=1):\n    return x\n")
    push(name, sqlite_registry.url, sqlite_registry.tokens["write"], store=local)
    calls = [
        ("POST", "/webhooks", {"url": "http://127.0.0.1:9/hook", "events": ["alias"]}),
        ("PUT", f"/bentos/{name}/aliases/prod", {"version": 1, "expected": None}),
        ("PUT", f"/bentos/{name}/aliases/prod", {"version": 2, "expected": 1, "reason": "v2"}),
        ("POST", f"/bentos/{name}/aliases/prod/rollback", {}),
        ("PUT", f"/bentos/{name}/versions/2/tags/candidate", None),
        ("GET", "/health", None),
        ("GET", "/bentos", None),
        ("GET", f"/bentos/{name}", None),
        ("GET", f"/bentos/{name}/versions", None),
        ("GET", f"/bentos/{name}/versions/latest", None),
        ("GET", f"/bentos/{name}/aliases", None),
        ("GET", f"/bentos/{name}/aliases/prod", None),
        ("GET", f"/bentos/{name}/compare?from=1&to=2", None),
        ("GET", f"/bentos/{name}/history", None),
        ("GET", f"/search?name={name}", None),
        ("POST", "/blobs/missing", {"digests": ["0" * 64]}),
        ("POST", "/tokens", {"scope": "read", "name": "reader"}),
        ("GET", "/tokens", None),
        ("DELETE", f"/bentos/{name}/versions/2/tags/candidate", None),
        ("PUT", f"/bentos/{name}/aliases/prod/policy", {"requires": ["compatible"]}),
        ("GET", f"/bentos/{name}/aliases/prod/policy", None),
        ("POST", f"/bentos/{name}/versions/2/verifications", {"passed": True, "replayed": 3}),
        ("GET", f"/bentos/{name}/versions/2/verifications", None),
        ("GET", "/webhooks", None),
    ]
    document = sqlite_registry.api("GET", "/openapi.json").json()
    operations = {(op.method, op.path.removeprefix("/api/v1")): op for op in OPERATIONS}
    checked = set()
    for method, path, body in calls:
        answer = sqlite_registry.api(method, path, "admin", **({"json": body} if body is not None else {}))
        assert answer.status_code in (200, 201), (path, answer.text)
        op = next(op for (m, p), op in operations.items() if m == method and _matches(p, path.partition("?")[0]))
        assert op.result is not None, op.path
        errors = [e.message for e in _validator(document, op.result).iter_errors(answer.json())]
        assert not errors, (method, path, errors)
        assert op.result.model_validate(answer.json()).to_json() == answer.json()  # a client reads back what was sent
        checked.add(op.handler.__name__)
    hook = sqlite_registry.api("GET", "/webhooks", "admin").json()["webhooks"][0]["id"]
    deliveries = sqlite_registry.api("GET", f"/webhooks/{hook}/deliveries", "admin").json()
    assert not list(_validator(document, DeliveryList).iter_errors(deliveries)) and deliveries["deliveries"]
    assert len(checked) == 23  # of 28 typed operations; publish and put_blob ran in push, schemathesis runs all


def _matches(template: str, path: str) -> bool:
    parts, wanted = template.strip("/").split("/"), path.strip("/").split("/")
    return len(parts) == len(wanted) and all(p.startswith("{") or p == w for p, w in zip(parts, wanted, strict=True))
