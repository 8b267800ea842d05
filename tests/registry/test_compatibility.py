"""API compatibility between two versions' service schemas, on generated schemas."""

from __future__ import annotations

import copy

from hypothesis import given, settings
from hypothesis import strategies as st

from bento_jupyter.bento.manifest_model import BentoManifest
from bento_jupyter.registry.compatibility import api_changes, breaking, describe


def typed(manifest: dict) -> BentoManifest:
    return BentoManifest.model_validate({"name": "demo", **manifest})


names = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)
types = st.one_of(
    st.sampled_from([{"type": t} for t in ("integer", "number", "string", "boolean")]),
    st.builds(
        lambda dtype, shape: {"type": "tensor", "format": "numpy-array", "dtype": dtype, "shape": shape},
        st.sampled_from(["float32", "int64"]),
        st.lists(st.one_of(st.none(), st.integers(1, 8)), min_size=1, max_size=3),
    ),
)


@st.composite
def routes(draw):
    params = draw(st.dictionaries(names, types, max_size=4))
    required = [p for p in params if draw(st.booleans())]
    return {
        "route": "/" + draw(names),
        "input": {"type": "object", "properties": params, "required": required},
        "output": draw(types),
        "is_stream": draw(st.booleans()),
    }


manifests = st.dictionaries(names, routes(), min_size=1, max_size=4).map(
    lambda apis: {"schema": {"routes": [{"name": n, **r} for n, r in apis.items()]}}
)


@settings(max_examples=60, deadline=None)
@given(manifests)
def test_a_version_is_compatible_with_itself(manifest):
    assert api_changes(typed(manifest), typed(copy.deepcopy(manifest))) == []


@settings(max_examples=60, deadline=None)
@given(manifests, names, types, st.data())
def test_a_new_optional_parameter_or_a_new_api_is_compatible(manifest, param, kind, data):
    new = copy.deepcopy(manifest)
    target = data.draw(st.sampled_from(new["schema"]["routes"]))
    if param in target["input"]["properties"]:
        return
    target["input"]["properties"][param] = {**kind, "default": None}
    new["schema"]["routes"].append({**copy.deepcopy(target), "name": "zz_new_api", "route": "/zz_new_api"})
    changes = api_changes(typed(manifest), typed(new))
    assert not breaking(changes)
    assert {c.message for c in changes} >= {"new API at /zz_new_api"}


@settings(max_examples=60, deadline=None)
@given(manifests, st.data())
def test_removing_an_api_or_a_parameter_or_changing_a_type_is_breaking(manifest, data):
    new = copy.deepcopy(manifest)
    routes_ = new["schema"]["routes"]
    victim = data.draw(st.sampled_from(routes_))
    params = victim["input"]["properties"]
    change = data.draw(st.sampled_from(["remove_api", "remove_param", "retype", "stream"]))
    if change == "remove_api":
        routes_.remove(victim)
        expected = f"- {victim['name']}: API removed"
    elif change == "remove_param" and params:
        param = data.draw(st.sampled_from(sorted(params)))
        del params[param]
        expected = f"- {victim['name']}: parameter {param!r} removed"
    elif change == "retype" and params:
        param = data.draw(st.sampled_from(sorted(params)))
        before = params[param]
        params[param] = {"type": "array"} if before.get("type") != "array" else {"type": "object"}
        after = params[param]["type"]
        expected = f"- {victim['name']}: parameter {param!r} changed type: {describe(before)} -> {after}"
    else:
        victim["is_stream"] = not victim["is_stream"]
        expected = f"- {victim['name']}: " + ("no longer a stream API" if not victim["is_stream"] else "turned into")
    assert any(str(c).startswith(expected) for c in breaking(api_changes(typed(manifest), typed(new))))


def test_tensor_types_read_with_dtype_and_shape():
    assert describe({"type": "tensor", "dtype": "float32", "shape": [None, 4], "title": "X"}) == "tensor float32[?, 4]"
    old = {"schema": {"routes": [{"name": "p", "route": "/p", "input": {"properties": {}}, "is_task": True}]}}
    new = {"schema": {"routes": [{"name": "p", "route": "/p", "input": {"properties": {}}}]}}
    assert [str(c) for c in api_changes(typed(old), typed(new))] == ["- p: no longer a task API"]
