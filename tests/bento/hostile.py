"""Crafted bentos an attacker could hand over: pickles that run code, paths that leave the bento."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

from bento_jupyter.bento.manifest import list_files, manifest_digest
from bento_jupyter.bento.manifest_model import SCHEMA_VERSION
from bento_jupyter.bento.manifest_paths import MANIFEST_NAME

SERVICE = "def predict(x: list) -> list:\n    return x\n"
API = {
    "name": "predict",
    "route": "/predict",
    "function": "predict",
    "batchable": False,
    "max_batch_size": 1,
    "max_latency_ms": 10.0,
    "batch_dim": 0,
    "device": None,
}


class Payload:
    """Unpickling it creates ``marker``: proof that code from the file ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.marker, "w"))


def pickle_bento(root: Path, marker: Path, name: str = "evil", **entry: Any) -> dict[str, Any]:
    """A bento whose model is a pickle that creates ``marker``, its manifest claiming it is harmless."""
    (root / "src").mkdir(parents=True)
    (root / "src" / "service.py").write_text(SERVICE)
    (root / "models").mkdir()
    (root / "models" / "m.pkl").write_bytes(pickle.dumps(Payload(marker)))
    model = {"name": "m", "kind": "pickle", "files": ["m.pkl"], "code_executing": False, **entry}
    document = {"kind": "bento", "name": name, "source": "src/service.py", "apis": [API], "models": [model]}
    return crafted_manifest(root, {**document, "lineage": {}})


def crafted_manifest(root: Path, document: dict[str, Any]) -> dict[str, Any]:
    """Write ``document`` as the bento's manifest, files and digest filled in, as an attacker would: with no check
    of its fields (a reader must refuse what does not fit)."""
    document = {**document, "schema_version": SCHEMA_VERSION, "files": [e.model_dump() for e in list_files(root)]}
    document["digest"] = manifest_digest(document)
    (root / MANIFEST_NAME).write_text(json.dumps(document, sort_keys=True, indent=2))
    return document
