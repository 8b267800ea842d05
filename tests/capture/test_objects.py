"""The object store: whatever a storage library raises while writing an object reaches the user as one line
naming the object and its cell, never as the library's traceback."""

from __future__ import annotations

import threading

import pytest

from bento_jupyter.capture.objects import save_objects
from bento_jupyter.errors import CaptureError


def test_an_object_the_store_cannot_write_is_one_line_naming_it_and_its_cell(tmp_path):
    with pytest.raises(CaptureError) as caught:
        save_objects({"lock": threading.Lock()}, tmp_path, origins={"lock": "cell c1 (execution 2)"})
    message = str(caught.value)
    assert "\n" not in message and "'lock'" in message and "cell c1 (execution 2)" in message
    assert "create it inside the function that uses it" in message
