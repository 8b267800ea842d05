"""The JSON bodies the registry parses agree with what its OpenAPI document states, on generated bodies: one the
document's schema accepts is accepted by a real registry, one it refuses gets a 400 naming the field at fault."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from bento_jupyter.bento.local_store import Store
from bento_jupyter.bento.manifest import manifest_digest
from bento_jupyter.registry.client.remote import push
from tests.registry.conftest import RegistryProcess, make_bento

pytestmark = pytest.mark.integration
BENTO = "bodies"
RELAXED = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def published(sqlite_registry: RegistryProcess, tmp_path_factory: pytest.TempPathFactory) -> RegistryProcess:
    local = Store("bentos", tmp_path_factory.mktemp("bodies-local"))
    make_bento(local, BENTO)
    push(BENTO, sqlite_registry.url, sqlite_registry.tokens["write"], store=local)
    return sqlite_registry


@pytest.fixture(scope="module")
def document(published: RegistryProcess) -> dict[str, Any]:
    return published.api("GET", "/openapi.json").json()


def _body_errors(document: dict[str, Any], template: str, method: str, body: Any) -> list[jsonschema.ValidationError]:
    """What the document's request body schema for ``method template`` finds wrong with ``body``."""
    operation = document["paths"]["/api/v1" + template][method]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    resource = Resource.from_contents(document, default_specification=DRAFT202012)
    registry: Registry = Registry().with_resource("urn:registry-openapi", resource)
    if "$ref" in schema:
        schema = {"$ref": "urn:registry-openapi" + schema["$ref"]}
    return list(jsonschema.Draft202012Validator(schema, registry=registry).iter_errors(body))


def _field(error: jsonschema.ValidationError) -> str | None:
    """The top-level field an error is about (a missing required one included); None for the body itself."""
    if error.absolute_path:
        return str(error.absolute_path[0])
    if error.validator == "required":
        return next(str(f) for f in error.validator_value if f not in error.instance)
    return None


def _agrees(target: RegistryProcess, document: dict[str, Any], method: str, template: str, body: Any) -> None:
    errors = _body_errors(document, template, method.lower(), body)
    path = template.format(name=BENTO, alias="prod", ref=1)
    answer = target.api(method, path, "admin", data=json.dumps(body), headers={"Content-Type": "application/json"})
    if not errors:
        assert answer.status_code in (200, 201), (body, answer.text)
        return
    assert answer.status_code == 400 and answer.json()["code"] == "invalid", (body, answer.text)
    fields = {_field(e) for e in errors} - {None}
    if fields:
        assert any(f in answer.json()["error"] for f in fields), (body, fields, answer.text)


def _objects(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """Bodies: objects with some of ``fields`` (and sometimes a stray one), or another JSON value entirely."""
    objects = st.fixed_dictionaries({}, optional={**fields, "stray": st.integers()})
    return st.one_of(objects, objects, objects, st.none(), st.lists(st.integers(), max_size=2), st.text(max_size=3))


def _word_lists(words: list[str]) -> st.SearchStrategy[Any]:
    """A list of words or one comma-separated string of them, some padded with spaces, some unknown or mistyped."""
    word = st.sampled_from([*words, "", "  ", "unknown", words[0].upper()]).flatmap(
        lambda w: st.sampled_from([w, f" {w}", f"{w} ", f" {w} "])
    )
    return st.one_of(
        st.lists(word, max_size=4),
        st.lists(word, max_size=4).map(",".join),
        st.lists(st.one_of(word, st.integers(), st.none()), max_size=3),
        st.integers(),
        st.none(),
    )


@RELAXED
@given(body=_objects({"requires": _word_lists(["compatible", "verified", "none"])}))
def test_an_alias_policy_body_is_accepted_exactly_when_the_document_allows_it(published, document, body):
    _agrees(published, document, "PUT", "/bentos/{name}/aliases/{alias}/policy", body)


URLS = ["http://127.0.0.1:9/hook", "https://hooks.example.com:8443/a?b=c", "http://a b/", "ftp://host/", "http://x"]


@RELAXED
@given(
    body=_objects(
        {
            "url": st.one_of(st.sampled_from(URLS), st.text(max_size=12), st.integers()),
            "events": _word_lists(["publish", "alias", "rollback", "tag", "untag", "delete", "policy", "verify", "*"]),
            "secret": st.one_of(st.none(), st.text(max_size=140), st.integers()),
        }
    )
)
def test_a_webhook_body_is_accepted_exactly_when_the_document_allows_it(published, document, body):
    _agrees(published, document, "POST", "/webhooks", body)


REPORT_VALUES = st.one_of(st.integers(), st.text(max_size=8), st.lists(st.booleans(), max_size=2), st.none())


@RELAXED
@given(
    body=_objects({"passed": st.one_of(st.booleans(), st.sampled_from([0, 1, "true", None])), "samples": REPORT_VALUES})
)
def test_a_verification_body_is_accepted_exactly_when_the_document_allows_it(published, document, body):
    _agrees(published, document, "POST", "/bentos/{name}/versions/{ref}/verifications", body)


@RELAXED
@given(report=st.dictionaries(st.text(max_size=6).filter(lambda k: k != "passed"), REPORT_VALUES, max_size=4))
def test_a_verification_report_is_kept_as_sent(published, report):
    body = {**report, "passed": True}  # passed last: the order sent is the order kept
    answer = published.api("POST", f"/bentos/{BENTO}/versions/1/verifications", json=body)
    assert answer.status_code == 201, answer.text
    listed = published.api("GET", f"/bentos/{BENTO}/versions/1/verifications", "read").json()["verifications"]
    kept = next(v["report"] for v in listed if v["id"] == answer.json()["id"])
    assert list(kept.items()) == list(body.items())


@RELAXED
@given(extra=st.dictionaries(st.sampled_from(["added_later", "x-vendor", "notes"]), REPORT_VALUES, min_size=1))
def test_a_published_manifest_keeps_the_fields_this_registry_does_not_know_as_sent(published, extra):
    manifest = published.api("GET", f"/bentos/{BENTO}/versions/1", "read").json()["manifest"]
    newer = {**manifest, **extra, "lineage": {**manifest["lineage"], "provider": {"float": 5.0}}}
    newer["digest"] = manifest_digest(newer)  # the digest covers the unknown fields too
    answer = published.api("POST", f"/bentos/{BENTO}/versions", json=newer)
    assert answer.status_code in (200, 201), answer.text
    stored = published.api("GET", f"/bentos/{BENTO}/versions/{answer.json()['version']}", "read").json()["manifest"]
    assert json.dumps(stored, sort_keys=True) == json.dumps(newer, sort_keys=True)  # every field; 5.0 as written
