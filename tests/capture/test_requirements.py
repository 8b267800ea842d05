"""Requirements come from what the code imports, pinned to installed versions, never a freeze."""

from __future__ import annotations

import importlib.metadata as metadata

import pytest

from bento_jupyter.capture.requirements import infer_requirements, validate_requirement


def test_imported_modules_map_to_pinned_distributions():
    pins = infer_requirements({"numpy", "yaml", "json", "os"})
    assert f"numpy=={metadata.version('numpy')}" in pins
    assert any(p.lower().startswith("pyyaml==") for p in pins)
    assert not any(p.startswith(("json", "os")) for p in pins)
    assert len(pins) == 2


def test_local_version_labels_are_dropped_from_pins():
    pins = infer_requirements({"torch"})
    assert pins == [f"torch=={metadata.version('torch').split('+')[0]}"]


def test_overrides_replace_inferred_pins():
    assert infer_requirements({"numpy"}, ["numpy>=1.26,<3", "requests==2.31.0"]) == [
        "numpy>=1.26,<3",
        "requests==2.31.0",
    ]


@pytest.mark.parametrize("bad", ["numpy; rm -rf /", "numpy\nRUN x", "git+https://x/y", "-e .", "a==1 b==2"])
def test_requirement_strings_are_validated(bad):
    with pytest.raises(ValueError):
        validate_requirement(bad)
