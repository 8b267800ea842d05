"""Pinned requirements from what the captured code imports: modules -> distributions -> versions."""

from __future__ import annotations

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
