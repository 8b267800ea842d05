"""Papermill parameters: overrides injected by papermill as a cell right after the cell tagged ``parameters``."""

from __future__ import annotations

import ast
import keyword
from collections.abc import Iterable
from pathlib import Path
from typing import Any

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
    """A YAML (or JSON) mapping of parameter names to values, read as papermill reads it (dates stay text)."""
    from papermill.iorw import NoDatesSafeLoader

    try:
        loaded = yaml.load(path.read_text(), Loader=NoDatesSafeLoader)
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


def _check(name: Any, value: Any) -> None:
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise ExportError(f"invalid parameter name {name!r}: use a Python identifier")
    text = repr(value)
    try:
        if ast.literal_eval(text) != value:
            raise ValueError
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        raise ExportError(f"parameter {name}: {text[:60]} is not a plain literal value") from None


def inject_parameters(nb: Any, parameters: dict[str, Any]) -> None:
    """Insert the overrides as a cell after the ``parameters`` cell (replacing an earlier injected one),
    as papermill does: its own parameterization writes the cell."""
    from papermill.parameterize import parameterize_notebook

    nb.cells = [c for c in nb.cells if INJECTED_TAG not in c.get("metadata", {}).get("tags", [])]
    if not parameters:
        return
    if not any(PARAMETERS_TAG in c.get("metadata", {}).get("tags", []) for c in nb.cells):
        raise ExportError(f"no cell is tagged {PARAMETERS_TAG!r} to override: tag the cell that sets the parameters")
    for name, value in parameters.items():
        _check(name, value)
    for cell in nb.cells:  # what papermill's own notebook loader ensures before it parameterizes
        cell.metadata.setdefault("tags", [])
    nb.metadata.setdefault("papermill", {})
    injected = parameterize_notebook(
        nb, parameters, comment="Parameters injected by bento-jupyter export", kernel_name="python3", language="python"
    )
    nb.cells = injected.cells
