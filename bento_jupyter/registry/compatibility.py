"""Is version B's API a drop-in for version A's? A readable list of changes, each breaking or not.

Read from the manifest's ``schema`` (BentoML's ``/schema.json`` shape: routes with ``input`` JSON Schema,
``output``, ``is_task``/``is_stream``). Breaking: an API removed or moved to another route, a parameter
removed, added without a default or made required, a parameter's or the output's type changed (for
tensors: format, dtype or shape), a streaming or task API turned into a plain one (or back). Compatible:
a new API, a new parameter with a default.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from bento_jupyter.bento.manifest_model import BentoManifest

_COSMETIC = frozenset({"title", "description", "default", "examples", "example"})
_MODES = ("is_stream", "is_task")


@dataclass(frozen=True)
class Change:
    """One difference between two versions' APIs."""

    api: str
    message: str
    breaking: bool

    def __str__(self) -> str:
        return f"{'-' if self.breaking else '+'} {self.api}: {self.message}"


def _routes(manifest: BentoManifest) -> dict[str, dict[str, Any]]:
    schema = manifest.service_schema or {}  # service/schema.py's document, as the bento recorded it
    routes = [r for r in schema.get("routes") or [] if isinstance(r, dict) and r.get("name")]
    if not routes:  # no service schema: compare what the api entries say (names and routes)
        routes = [api.model_dump() for api in manifest.apis]
    return {str(r["name"]): r for r in routes}


def _shape(schema: Any) -> Any:
    """The parts of a JSON Schema that decide what a value may be (titles and defaults dropped)."""
    if isinstance(schema, dict):
        return {k: _shape(v) for k, v in sorted(schema.items()) if k not in _COSMETIC}
    if isinstance(schema, list):
        return [_shape(v) for v in schema]
    return schema


def describe(schema: Any) -> str:
    """A short name for a type: ``integer``, ``tensor float32[?, 4]``, or compact JSON."""
    shape = _shape(schema)
    if not isinstance(shape, dict):
        return json.dumps(shape)
    if shape.get("type") == "tensor":
        dims = shape.get("shape")
        size = "[" + ", ".join("?" if d in (None, -1) else str(d) for d in dims) + "]" if isinstance(dims, list) else ""
        return f"tensor {shape.get('dtype') or shape.get('format') or ''}{size}".strip()
    if set(shape) == {"type"}:
        return str(shape["type"])
    return json.dumps(shape, separators=(",", ":"))


def _params(route: dict[str, Any]) -> tuple[dict[str, Any], set[str]]:
    schema = route.get("input")
    schema = schema if isinstance(schema, dict) else {}
    properties = schema.get("properties")
    return (properties if isinstance(properties, dict) else {}), set(schema.get("required") or [])


def _route_changes(name: str, old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    changes = []
    if old.get("route") != new.get("route"):
        changes.append(Change(name, f"moved from {old.get('route')} to {new.get('route')}", True))
    for mode in _MODES:
        if bool(old.get(mode)) != bool(new.get(mode)):
            kind = mode.removeprefix("is_")
            what = f"no longer a {kind} API" if old.get(mode) else f"turned into a {kind} API"
            changes.append(Change(name, what, True))
    old_params, old_required = _params(old)
    new_params, new_required = _params(new)
    for param in old_params:
        if param not in new_params:
            changes.append(Change(name, f"parameter {param!r} removed", True))
        elif _shape(old_params[param]) != _shape(new_params[param]):
            before, after = describe(old_params[param]), describe(new_params[param])
            changes.append(Change(name, f"parameter {param!r} changed type: {before} -> {after}", True))
        elif param in new_required and param not in old_required:
            changes.append(Change(name, f"parameter {param!r} is now required", True))
    for param in new_params:
        if param not in old_params:
            required = param in new_required
            added = "added without a default" if required else "added with a default"
            changes.append(Change(name, f"parameter {param!r} ({describe(new_params[param])}) {added}", required))
    if "output" in old and _shape(old.get("output")) != _shape(new.get("output")):
        before, after = describe(old.get("output")), describe(new.get("output"))
        changes.append(Change(name, f"output changed type: {before} -> {after}", True))
    return changes


def api_changes(old: BentoManifest, new: BentoManifest) -> list[Change]:
    """Every API difference from manifest ``old`` to manifest ``new``, breaking ones first."""
    before, after = _routes(old), _routes(new)
    changes = [Change(name, "API removed", True) for name in before if name not in after]
    for name in before.keys() & after.keys():
        changes += _route_changes(name, before[name], after[name])
    changes += [Change(name, f"new API at {after[name].get('route')}", False) for name in after if name not in before]
    return sorted(changes, key=lambda c: (not c.breaking, c.api, c.message))


def breaking(changes: list[Change]) -> list[Change]:
    return [c for c in changes if c.breaking]
