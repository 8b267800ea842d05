"""Papermill-style parameters: overrides injected as a cell right after the cell tagged ``parameters``."""

from __future__ import annotations

import ast
import keyword
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import nbformat
import yaml

from bento_jupyter.errors import ExportError

PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"


def parse_value(text: str) -> Any:
    """A ``-p`` value: a Python literal when it reads as one (``3``, ``0.1``, ``True``, ``[1, 2]``), else the text."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text


def read_parameters_file(path: Path) -> dict[str, Any]:
    """A YAML (or JSON) mapping of parameter names to values."""
    try:
        loaded = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ExportError(f"cannot read parameters file {path}: {exc}") from None
    if not isinstance(loaded, dict):
        raise ExportError(f"parameters file {path} must hold a mapping of names to values")
    return loaded


def collect_parameters(pairs: Iterable[tuple[str, str]], parameters_file: Path | None) -> dict[str, Any]:
    """The file's values, overridden by each ``-p NAME VALUE`` in order."""
    parameters = read_parameters_file(parameters_file) if parameters_file else {}
    parameters.update({name: parse_value(value) for name, value in pairs})
    return parameters


def _assignment(name: Any, value: Any) -> str:
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise ExportError(f"invalid parameter name {name!r}: use a Python identifier")
    text = repr(value)
    try:
        if ast.literal_eval(text) != value:
            raise ValueError
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        raise ExportError(f"parameter {name}: {text[:60]} is not a plain literal value") from None
    return f"{name} = {text}"


def inject_parameters(nb: Any, parameters: dict[str, Any]) -> None:
    """Insert the overrides as a cell after the ``parameters`` cell (replacing an earlier injected one)."""
    nb.cells = [c for c in nb.cells if INJECTED_TAG not in c.get("metadata", {}).get("tags", [])]
    if not parameters:
        return
    tagged = [i for i, c in enumerate(nb.cells) if PARAMETERS_TAG in c.get("metadata", {}).get("tags", [])]
    if not tagged:
        raise ExportError(f"no cell is tagged {PARAMETERS_TAG!r} to override: tag the cell that sets the parameters")
    lines = ["# Parameters injected by bento-jupyter export", *(_assignment(k, v) for k, v in parameters.items())]
    cell = nbformat.v4.new_code_cell("\n".join(lines) + "\n")
    cell.metadata["tags"] = [INJECTED_TAG]
    nb.cells.insert(tagged[0] + 1, cell)
