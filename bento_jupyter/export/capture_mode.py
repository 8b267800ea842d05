"""Capture mode: how ``bento-jupyter export`` tells its headless kernel where to write bundles.

``bento-jupyter export`` starts its headless kernel with ``$BENTO_JUPYTER_EXPORT`` naming a scratch
directory; in that kernel every ``%%bento serve`` cell, besides serving, writes its service there as
a bundle (a bento directory).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bento_jupyter.bento.manifest import file_sha256

CAPTURE_VARIABLE = "BENTO_JUPYTER_EXPORT"


@dataclass(frozen=True)
class CaptureMode:
    """Where a headless kernel writes its bundles, and what the exporter adds to their lineage."""

    directory: Path
    lineage: dict[str, Any] = field(default_factory=dict)

    def to_environment(self) -> dict[str, str]:
        return {CAPTURE_VARIABLE: json.dumps({"directory": str(self.directory), "lineage": self.lineage})}

    @classmethod
    def from_environment(cls) -> CaptureMode | None:
        """The capture mode this kernel was started in, or None for an ordinary kernel."""
        raw = os.environ.get(CAPTURE_VARIABLE)
        if not raw:
            return None
        settings = json.loads(raw)
        return cls(Path(settings["directory"]), settings.get("lineage", {}))


def notebook_lineage(notebook: str | None) -> dict[str, Any]:
    """The notebook file and the sha256 of its bytes on disk, when there is such a file."""
    if not notebook or not Path(notebook).is_file():
        return {}
    return {"notebook_path": str(Path(notebook).resolve()), "notebook_sha256": file_sha256(Path(notebook))}
