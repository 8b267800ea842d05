"""Atomic file writes: a reader sees the old file or the new one, and a failed write leaves the old one alone."""

from __future__ import annotations

import stat

import pytest

from bento_jupyter.atomic import replacing, write_file


def test_a_file_is_replaced_whole_and_created_private(tmp_path):
    target = tmp_path / "config.json"
    target.write_bytes(b"old")
    write_file(target, b"new")
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_scratch(tmp_path):
    target = tmp_path / "record.json"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), replacing(target) as scratch:
        scratch.write_bytes(b"half")
        raise RuntimeError("the writer died")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["record.json"]


def test_the_scratch_file_can_live_elsewhere_on_the_same_filesystem(tmp_path):
    (tmp_path / "bento").mkdir()
    target = tmp_path / "bento" / "bento.sig"
    with replacing(target, scratch_dir=tmp_path, mode=0o644) as scratch:
        assert scratch.parent == tmp_path and not list((tmp_path / "bento").iterdir())
        scratch.write_bytes(b"signature")
    assert target.read_bytes() == b"signature" and stat.S_IMODE(target.stat().st_mode) == 0o644
