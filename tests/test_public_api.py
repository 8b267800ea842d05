"""What ``import bento_jupyter`` offers is documented where users look: README shows each public function in use."""

from __future__ import annotations

import inspect
from pathlib import Path

import bento_jupyter

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
IPYTHON_HOOKS = {"load_ipython_extension", "unload_ipython_extension"}  # called by %load_ext, not by users


def test_every_public_function_is_shown_in_use_in_the_readme():
    public = [
        n for n in bento_jupyter.__all__ if inspect.isfunction(getattr(bento_jupyter, n)) and n not in IPYTHON_HOOKS
    ]
    assert public, "bento_jupyter exports functions"
    undocumented = [name for name in public if f"{name}(" not in README]
    assert undocumented == []


def test_every_public_function_has_a_docstring():
    for name in bento_jupyter.__all__:
        value = getattr(bento_jupyter, name)
        if inspect.isfunction(value):
            assert (value.__doc__ or "").strip(), name
