"""Pinned requirements from what the captured code imports: modules -> distributions -> versions."""

from __future__ import annotations

import importlib
import importlib.metadata as metadata
import os
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from bento_jupyter.errors import RequirementError


def validate_requirement(line: str) -> str:
    """A plain requirement, ``name[extras] specifiers`` as PEP 508 (read by ``packaging``) with no URL, marker or
    line break, so it is safe to write into requirements.txt and a Dockerfile; RequirementError otherwise."""
    line = line.strip()
    try:
        requirement = Requirement(line)
    except InvalidRequirement as exc:
        raise RequirementError(f"not a plain requirement specifier: {line!r} ({exc})") from None
    if requirement.url or requirement.marker or any(c in line for c in "\r\n;@"):
        raise RequirementError(f"not a plain requirement specifier: {line!r} (no URL or environment marker)")
    return line


def _distribution_key(requirement: str) -> str:
    return canonicalize_name(Requirement(requirement).name)


class _Installed:
    """What is installed on ``sys.path``, read once per state of its directories: installing or removing a
    package (``%pip`` during the session) changes a directory's mtime, and the next build reads again."""

    def __init__(self) -> None:
        self._key: tuple[Any, ...] | None = None
        self._providers: Mapping[str, list[str]] = {}
        self._by_name: dict[str, metadata.Distribution] = {}

    @staticmethod
    def _state() -> tuple[Any, ...]:
        state: list[tuple[str, int | None]] = []
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
                pinned[canonicalize_name(dist)] = f"{dist}=={version}"
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
