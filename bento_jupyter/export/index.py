"""``export.json``: the index of an export directory, naming each bundle with its digest."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from bento_jupyter.bento.loader import bundles_in
from bento_jupyter.bento.manifest import read_manifest

INDEX_NAME = "export.json"


def write_index(work: Path, fields: dict[str, Any]) -> list[str]:
    """Verify the bundles in ``work`` and list them in ``export.json``; return the service names."""
    manifests = [read_manifest(bundle) for bundle in bundles_in(work)]
    if manifests:
        index = {
            **fields,
            "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "services": {m.name: {"path": m.name, "digest": m.digest} for m in manifests},
        }
        (work / INDEX_NAME).write_text(json.dumps(index, indent=2, sort_keys=True, default=repr))
    return [m.name for m in manifests]
