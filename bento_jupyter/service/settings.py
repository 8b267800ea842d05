"""Per-service settings: chosen in the kernel, recorded in a bento, applied wherever the bento is served."""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bento_jupyter.errors import ServiceDefinitionError


@dataclass(frozen=True)
class ServiceSettings:
    """What a service is served with beyond its APIs (``%config BentoMagics.max_body_mb = 64`` in the kernel).

    A bento records them in its manifest under ``settings``; ``bento-jupyter serve`` applies them (and so the
    Dockerfile's entrypoint and the Kubernetes, KServe and Ray targets that run it), and takes one flag per
    field to override them (``--max-body-mb 64``).
    """

    max_body_mb: float = 32.0  # the largest request body accepted, in MiB; larger ones are refused with 413
    # Every request's deadline, in seconds (None: none): past it, a request is refused or dropped before it is
    # computed, or answered 504; an API's ``timeout`` and a request's deadline header may only shorten it.
    request_timeout: float | None = None

    def __post_init__(self) -> None:
        if not 0 < self.max_body_mb < math.inf:
            raise ServiceDefinitionError(f"max_body_mb must be a positive number of MiB, not {self.max_body_mb}")
        if self.request_timeout is not None and not 0 < self.request_timeout < math.inf:
            raise ServiceDefinitionError(
                f"request_timeout must be a positive number of seconds (None: no deadline), not {self.request_timeout}"
            )

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 1024 * 1024)

    def to_manifest(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_manifest(cls, recorded: Mapping[str, Any] | None) -> ServiceSettings:
        """The settings a manifest records (an older bento without them: the defaults)."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in (recorded or {}).items() if key in known})

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """One ``--field-name`` option per setting, defaulting to None (keep the recorded value)."""
        for f in dataclasses.fields(cls):
            kind = {"float": float, "float | None": float, "int": int, "str": str}[str(f.type)]
            flag = "--" + f.name.replace("_", "-")
            parser.add_argument(flag, type=kind, default=None, help=f"override the bento's {f.name} ({f.default})")

    @classmethod
    def given(cls, args: argparse.Namespace) -> dict[str, Any]:
        """The settings given on the command line (``add_arguments``), by field name."""
        values = {f.name: getattr(args, f.name, None) for f in dataclasses.fields(cls)}
        return {name: value for name, value in values.items() if value is not None}

    def overridden(self, overrides: Mapping[str, Any]) -> ServiceSettings:
        """These settings with ``overrides`` (by field name) in their place."""
        return dataclasses.replace(self, **overrides)
