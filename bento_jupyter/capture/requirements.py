"""Pinned requirements from what the captured code imports: modules -> distributions -> versions."""

from __future__ import annotations

import importlib
import importlib.metadata as metadata
import re
import sys
from collections.abc import Iterable

_REQUIREMENT = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9,._-]+\])?\s*((==|>=|<=|~=|!=|<|>)\s*[A-Za-z0-9.*+!_-]+\s*,?\s*)*$"
)


def validate_requirement(line: str) -> str:
    """A requirement string safe to write into requirements.txt and a Dockerfile."""
    line = line.strip()
    if not _REQUIREMENT.match(line):
        raise ValueError(f"not a plain requirement specifier: {line!r}")
    return line


def _distribution_key(requirement: str) -> str:
    return re.split(r"[\[<>=!~ ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def infer_requirements(modules: Iterable[str], extra: Iterable[str] = ()) -> list[str]:
    """``name==version`` for each installed distribution providing ``modules``; ``extra`` overrides."""
    importlib.invalidate_caches()  # packages %pip installed during the session count too
    providers = metadata.packages_distributions()
    pinned: dict[str, str] = {}
    for module in sorted(set(modules)):
        if module in sys.stdlib_module_names or module == "__main__":
            continue
        for dist in providers.get(module, []):
            try:
                version = metadata.version(dist).split("+", 1)[0]  # local builds (+cpu) pin their release
                pinned[dist.lower().replace("_", "-")] = f"{dist}=={version}"
            except metadata.PackageNotFoundError:
                continue
    for requirement in extra:
        requirement = validate_requirement(requirement)
        pinned[_distribution_key(requirement)] = requirement
    return [pinned[key] for key in sorted(pinned)]


def _installed(name: str) -> metadata.Distribution | None:
    try:
        return metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return None


def _pinned_version(dist: metadata.Distribution) -> str:
    return dist.version.split("+", 1)[0]


def lock_requirements(requirements: Iterable[str]) -> list[str]:
    """The transitive closure of ``requirements``, each pinned to the version installed here.

    Dependencies are read from installed metadata (``Requires-Dist``, markers evaluated for this
    interpreter, requested extras followed), so no network is needed. A requirement that is not
    installed here is kept as written. ``pip install -r`` of the result reproduces this environment.
    """
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    importlib.invalidate_caches()  # see packages %pip installed after this process started
    locked: dict[str, str] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    pending = [Requirement(line) for line in requirements]
    while pending:
        requirement = pending.pop()
        key = canonicalize_name(requirement.name)
        extras = frozenset(requirement.extras)
        if (key, extras) in seen:
            continue
        seen.add((key, extras))
        dist = _installed(requirement.name)
        if dist is None:
            locked.setdefault(key, str(requirement))
            continue
        locked[key] = f"{dist.metadata['Name']}=={_pinned_version(dist)}"
        for line in dist.requires or []:
            try:
                dependency = Requirement(line)
            except InvalidRequirement:
                continue
            environments = [{"extra": extra} for extra in sorted(extras)] or [{"extra": ""}]
            if dependency.marker is None or any(dependency.marker.evaluate(env) for env in environments):
                pending.append(dependency)
    return [locked[key] for key in sorted(locked)]
