"""The package type-checks: mypy over what ``[tool.mypy]`` in pyproject.toml lists, with its settings."""

from __future__ import annotations

import re
from pathlib import Path

from mypy import api

REPO = Path(__file__).resolve().parent.parent


def test_the_whole_package_type_checks():
    out, err, status = api.run(["--config-file", str(REPO / "pyproject.toml")])
    assert status == 0, out + err
    checked = re.search(r"no issues found in (\d+) source files", out)
    modules = list((REPO / "bento_jupyter").rglob("*.py"))
    assert checked is not None and int(checked.group(1)) == len(modules), f"mypy left modules out: {out}"
