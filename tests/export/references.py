"""Export the repository's notebooks once, and the answers their executed outputs say a bundle must give."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import requests

from bento_jupyter.export.notebook import EXECUTED_NAME, export_notebook
from tests.integration.kernel_session import NOTEBOOKS

SERVICES = {"quickstart.ipynb": "iris", "text_classifier.ipynb": "spam"}


@dataclass(frozen=True)
class Call:
    route: str
    payload: dict[str, Any]
    expected: Any


def printed_json(nb: Any, pattern: str) -> dict[str, Any]:
    """The JSON a cell (found by a regex on its source) printed when the export executed it."""
    cell = next(c for c in nb.cells if c.cell_type == "code" and re.search(pattern, c.source, re.M))
    text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
    return json.loads(text.strip().splitlines()[-1])


def reference_calls(export_dir: Path) -> list[Call]:
    """Requests and the answers the notebook itself computed, read from the executed copy of the export."""
    nb = nbformat.read(export_dir / EXECUTED_NAME, as_version=4)
    if any("%%bento serve iris" in c.source for c in nb.cells):
        out = printed_json(nb, r"^PROBES = features")
        return [
            Call("/predict", {"inputs": out["inputs"]}, out["predict"]),
            Call("/describe", {"text": "bento"}, out["describe"]),
        ]
    out = printed_json(nb, r"^PROBES = \[")
    probes = ["cheap pills", "lunch at noon", "win now", "meeting"]
    assert re.search(re.escape(json.dumps(probes)), "".join(c.source for c in nb.cells))
    return [Call("/classify", {"texts": probes}, out["classify"]), Call("/tokens", {"text": "Hi there"}, out["tokens"])]


def answers(url: str, calls: list[Call]) -> list[Any]:
    return [requests.post(f"{url}{call.route}", json=call.payload, timeout=30).json() for call in calls]


def export_all(root: Path) -> dict[str, Path]:
    """Every notebook in notebooks/ exported to ``root/STEM``: service name -> export directory."""
    exported = {}
    for notebook in sorted(NOTEBOOKS.glob("*.ipynb")):
        result = export_notebook(notebook, root / notebook.stem)
        (bundle,) = result.bundles
        exported[bundle.name] = result.directory
    assert set(exported) == set(SERVICES.values()), exported
    return exported
