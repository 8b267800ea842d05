"""The core type-checks: mypy over the packages ``[tool.mypy]`` in pyproject.toml lists, with its settings."""

from __future__ import annotations

from pathlib import Path

from mypy import api

REPO = Path(__file__).resolve().parent.parent


def test_the_core_type_checks():
    out, err, status = api.run(["--config-file", str(REPO / "pyproject.toml")])
    assert status == 0, out + err
