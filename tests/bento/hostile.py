"""Crafted bentos an attacker could hand over: pickles that run code, paths that leave the bento."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from bento_jupyter.bento.manifest import write_manifest

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
    return write_manifest(
        root,
        {"kind": "bento", "name": name, "source": "src/service.py", "apis": [API], "models": [model], "lineage": {}},
    )
