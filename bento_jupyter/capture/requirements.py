"""Pinned requirements from what the captured code imports: modules -> distributions -> versions."""

from __future__ import annotations

import importlib
import importlib.metadata as metadata
import os
import re
import sys
from collections.abc import Iterable, Mapping
from typing import Any

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


class _Installed:
    """What is installed on ``sys.path``, read once per state of its directories: installing or removing a
    package (``%pip`` during the session) changes a directory's mtime, and the next build reads again."""

    def __init__(self) -> None:
        self._key: tuple[Any, ...] | None = None
        self._providers: Mapping[str, list[str]] = {}
        self._by_name: dict[str, metadata.Distribution] = {}

    @staticmethod
    def _state() -> tuple[Any, ...]:
        state = []
        for entry in sys.path:
            try:
                state.append((entry, os.stat(entry or ".").st_mtime_ns))
            except OSError:
                state.append((entry, None))
        return tuple(state)

    def _refresh(self) -> None:
        key = self._state()
        if key == self._key:
            return
        from packaging.utils import canonicalize_name

        importlib.invalidate_caches()
        self._providers = metadata.packages_distributions()
        self._by_name = {}
        for dist in metadata.distributions():  # the first on sys.path wins, as importing does
            self._by_name.setdefault(canonicalize_name(dist.metadata["Name"] or ""), dist)
        self._key = key

    def providers(self) -> Mapping[str, list[str]]:
        self._refresh()
        return self._providers

    def distribution(self, name: str) -> metadata.Distribution | None:
        from packaging.utils import canonicalize_name

        self._refresh()
        return self._by_name.get(canonicalize_name(name))


_INSTALLED = _Installed()


def infer_requirements(modules: Iterable[str], extra: Iterable[str] = ()) -> list[str]:
    """``name==version`` for each installed distribution providing ``modules``; ``extra`` overrides."""
    providers = _INSTALLED.providers()  # packages %pip installed during the session count too
    pinned: dict[str, str] = {}
    for module in sorted(set(modules)):
        if module in sys.stdlib_module_names or module == "__main__":
            continue
        for dist in providers.get(module, []):
            installed = _INSTALLED.distribution(dist)
            if installed is not None:
                version = installed.version.split("+", 1)[0]  # local builds (+cpu) pin their release
                pinned[dist.lower().replace("_", "-")] = f"{dist}=={version}"
    for requirement in extra:
        requirement = validate_requirement(requirement)
        pinned[_distribution_key(requirement)] = requirement
    return [pinned[key] for key in sorted(pinned)]


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
        dist = _INSTALLED.distribution(requirement.name)
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
