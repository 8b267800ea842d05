"""Rollback and the promotion gate: compare-and-set, history with who and why, readable API diffs,
policies that require a verification, and recorded overrides."""

from __future__ import annotations

import concurrent.futures
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bento_jupyter.bento.local_store import Store
from bento_jupyter.bento.manifest import write_manifest
from bento_jupyter.bento.manifest_model import BentoManifest
from bento_jupyter.cli.main import main
from bento_jupyter.registry.client.remote import RegistryClient, push
from bento_jupyter.registry.errors import Conflict, Forbidden, NotFound, PromotionRefused
from tests.registry.conftest import RegistryProcess

pytestmark = pytest.mark.integration

INT = {"type": "integer"}
TENSOR = {"type": "tensor", "format": "numpy-array"}


def route(name: str, params: dict[str, Any], required: list[str], output: Any = TENSOR, **flags: Any) -> dict:
    return {
        "name": name,
        "route": f"/{name}",
        "input": {"type": "object", "properties": params, "required": required},
        "output": output,
        **flags,
    }


def publish(registry: RegistryProcess, store: Store, name: str, *routes: dict) -> int:
    """Build a bento whose service schema has ``routes`` and publish it; returns its registry version."""

    def fill(root: Path) -> None:
        (root / "src").mkdir()
        (root / "src" / "service.py").write_text(f"# {routes!r}\n")
        write_manifest(
            root,
            BentoManifest.model_validate(
                {"kind": "bento", "name": name, "schema": {"routes": list(routes)}, "lineage": {}}
            ),
        )

    item = store.add(name, fill)
    return push(item.tag, registry.url, registry.tokens["write"], store=store).version


def clients(registry: RegistryProcess) -> tuple[RegistryClient, RegistryClient]:
    return tuple(RegistryClient(registry.url, registry.tokens[scope]) for scope in ("write", "admin"))


@pytest.mark.parametrize("registry", ["sqlite-local", "postgres-local"], indirect=True)
def test_rollback_walks_back_one_move_at_a_time_and_records_who_and_why(registry, local, name):
    write, _ = clients(registry)
    for n in range(1, 4):
        assert publish(registry, local, name, route("predict", {"x": {**INT, "description": f"v{n}"}}, ["x"])) == n
    write.move_alias(name, "production", 1, None)
    write.move_alias(name, "production", 2, 1)
    write.move_alias(name, "production", 3, 2, reason="release 3")
    first = write.rollback(name, "production", reason="latency regression")
    assert (first.previous, first.version) == (3, 2)
    with pytest.raises(Conflict, match="points at 2, not 3"):
        write.rollback(name, "production", expected=3)
    assert write.rollback(name, "production").version == 1
    with pytest.raises(Conflict, match="no earlier target"):
        write.rollback(name, "production")
    write.move_alias(name, "production", 3, 1)
    assert write.rollback(name, "production").version == 1  # undoes the move 1 -> 3, not the rollbacks
    events = write.history(name, alias="production")
    assert [(e.action, e.from_version, e.to_version) for e in events] == [
        ("alias", None, 1),
        ("alias", 1, 2),
        ("alias", 2, 3),
        ("rollback", 3, 2),
        ("rollback", 2, 1),
        ("alias", 1, 3),
        ("rollback", 3, 1),
    ]
    assert events[3].reason == "latency regression" and events[2].reason == "release 3"
    assert events[3].actor.startswith("test-write") and (events[3].details or {})["undoes"] == events[2].id
    with pytest.raises(NotFound, match="no alias 'staging'"):
        write.rollback(name, "staging")


@pytest.mark.parametrize("registry", ["sqlite-local", "postgres-local"], indirect=True)
def test_concurrent_rollbacks_of_one_alias_move_it_exactly_once(registry, local, name):
    write, _ = clients(registry)
    for n in range(1, 3):
        publish(registry, local, name, route("predict", {"x": {**INT, "description": f"v{n}"}}, ["x"]))
    write.move_alias(name, "production", 1, None)
    write.move_alias(name, "production", 2, 1)

    def attempt(_: int) -> str:
        try:
            return f"moved {write.rollback(name, 'production', expected=2).version}"
        except Conflict:
            return "conflict"

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        outcomes = sorted(pool.map(attempt, range(8)))
    assert outcomes == ["conflict"] * 7 + ["moved 1"]
    assert [e.action for e in write.history(name, alias="production")] == ["alias", "alias", "rollback"]


def test_an_incompatible_api_is_refused_with_a_readable_diff_and_force_is_recorded(sqlite_registry, local, name):
    write, admin = clients(sqlite_registry)
    v1 = publish(sqlite_registry, local, name, route("predict", {"x": INT}, ["x"]), route("explain", {}, []))
    v2 = publish(
        sqlite_registry,
        local,
        name,
        route("predict", {"x": {"type": "string"}, "threshold": {"type": "number"}}, ["x", "threshold"]),
    )
    v3 = publish(
        sqlite_registry,
        local,
        name,
        route("predict", {"x": INT, "top_k": {**INT, "default": 5}}, ["x"]),
        route("explain", {}, []),
        route("embed", {"text": {"type": "string"}}, ["text"]),
    )
    write.move_alias(name, "production", v1, None)
    with pytest.raises(PromotionRefused) as refused:
        write.move_alias(name, "production", v2, v1)
    message = str(refused.value)
    for line in (
        "- explain: API removed",
        "- predict: parameter 'threshold' (number) added without a default",
        "- predict: parameter 'x' changed type: integer -> string",
        "--force",
    ):
        assert line in message
    assert write.aliases(name)["production"] == v1
    assert write.move_alias(name, "production", v3, v1).version == v3  # new API, new optional parameter
    with pytest.raises(Forbidden, match="admin token"):
        write.move_alias(name, "production", v2, v3, force=True)
    admin.move_alias(name, "production", v2, v3, reason="hotfix, clients updated", force=True)
    last = admin.history(name, alias="production")[-1]
    assert last.details is not None and last.details["forced"] is True and last.reason == "hotfix, clients updated"
    assert "- predict: parameter 'top_k' removed" in last.details["overridden"]
    assert write.rollback(name, "production").version == v3  # a rollback is never gated


def test_an_alias_that_requires_verification_moves_only_after_a_passing_one(sqlite_registry, local, name, capsys):
    write, _ = clients(sqlite_registry)
    v1 = publish(sqlite_registry, local, name, route("predict", {"x": INT}, ["x"]))
    v2 = publish(sqlite_registry, local, name, route("predict", {"x": INT, "y": {**INT, "default": 1}}, ["x"]))
    write.move_alias(name, "production", v1, None)
    remote = ["--url", sqlite_registry.url, "--token", sqlite_registry.tokens["admin"]]
    assert main(["registry", "alias-policy", name, "production", "--require", "verified,compatible", *remote]) == 0
    assert f"{name}@production requires: compatible, verified" in capsys.readouterr().out
    with pytest.raises(Forbidden):
        write.set_policy(name, "production", [])  # policies need an admin token
    with pytest.raises(PromotionRefused, match=f"{name}:{v2} has no passing verification"):
        write.move_alias(name, "production", v2, v1)
    write.record_verification(name, v2, False, samples=3, failures=["sample 2: expected 1, got 0"])
    with pytest.raises(PromotionRefused, match="no passing verification"):
        write.move_alias(name, "production", v2, v1)
    write.record_verification(name, v2, True, samples=3, tool="bento-jupyter verify")
    assert write.move_alias(name, "production", v2, v1).version == v2
    recorded = write.json("GET", f"/bentos/{name}/versions/{v2}/verifications")["verifications"]
    assert [(r["passed"], r["report"]["samples"]) for r in recorded] == [(False, 3), (True, 3)]
    assert main(["history", name, *remote]) == 0
    out = capsys.readouterr().out
    assert f"verified version {v2}: FAILED" in out and f"verified version {v2}: passed" in out
    assert "set @production to require compatible, verified" in out
    assert main(["rollback", name, "production", "--reason", "bad canary", *remote]) == 0
    assert f"{name}@production: {v2} -> {v1} (rolled back)" in capsys.readouterr().out
    assert main(["rollback", name, "production", *remote]) == 2
    assert "no earlier target" in capsys.readouterr().err


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
bodies = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {},
        optional={
            "version": json_values,
            "expected": json_values,
            "reason": json_values,
            "force": json_values,
            "requires": json_values,
            "passed": json_values,
            "url": json_values,
            "events": json_values,
            "secret": json_values,
        },
    ),
)


def test_bad_bodies_and_references_on_the_new_routes_are_4xx_never_5xx(sqlite_registry, local, name):
    publish(sqlite_registry, local, name, route("predict", {"x": INT}, ["x"]))
    routes = [
        ("PUT", f"/bentos/{name}/aliases/prod"),
        ("POST", f"/bentos/{name}/aliases/prod/rollback"),
        ("PUT", f"/bentos/{name}/aliases/prod/policy"),
        ("POST", f"/bentos/{name}/versions/1/verifications"),
        ("POST", "/webhooks"),
    ]

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(routes), bodies)
    def check(target, body):
        method, path = target
        answer = sqlite_registry.api(method, path, "admin", json=body)
        assert answer.status_code < 500, (method, path, body, answer.text)
        if answer.status_code == 400:
            assert answer.json()["code"] == "invalid" and answer.json()["error"]

    check()
    for path in (
        f"/bentos/{name}/compare?from=1&to=99999999999",
        f"/bentos/{name}/compare?from=x&to=1",
        f"/bentos/{name}/history?alias=1",
        "/webhooks/nope/deliveries/99999999999/redeliver",
    ):
        method = "POST" if path.endswith("redeliver") else "GET"
        assert sqlite_registry.api(method, path, "admin").status_code in (400, 404), path
