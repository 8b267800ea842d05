"""``bentos export`` / ``bentos import``: a bento carried as one file, and a corpus of crafted archives that the
import refuses with exit status 2 and one readable line, writing nothing outside the store and running nothing
(the pickle payload's marker file stays absent)."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from bento_jupyter.bento.local_store import Store
from bento_jupyter.bento.manifest import read_manifest, write_manifest
from bento_jupyter.bento.manifest_model import BentoManifest
from bento_jupyter.cli import main
from tests.bento.hostile import pickle_bento


def tar_bytes(members: list[tarfile.TarInfo | tuple[str, bytes]], compress: bool = True) -> bytes:
    """A tar archive of regular files (``(name, data)``) and hand-made headers (a ``TarInfo``, no data)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                tar.addfile(member)
            else:
                info = tarfile.TarInfo(member[0])
                info.size = len(member[1])
                tar.addfile(info, io.BytesIO(member[1]))
    return gzip.compress(out.getvalue()) if compress else out.getvalue()


def header(name: str, kind: bytes, **fields: object) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    for key, value in fields.items():
        setattr(info, key, value)
    return info


def bomb(manifest: bytes, name: str, size: int) -> bytes:
    """A gzip stream of ``bento.yaml`` then ``name`` holding ``size`` zero bytes: tiny packed, huge unpacked."""
    packer = zlib.compressobj(1, zlib.DEFLATED, 31)  # gzip framing
    first = tarfile.TarInfo("bento.yaml")
    first.size = len(manifest)
    second = tarfile.TarInfo(name)
    second.size = size
    parts = [packer.compress(first.tobuf(tarfile.PAX_FORMAT) + manifest + bytes(-len(manifest) % 512))]
    parts.append(packer.compress(second.tobuf(tarfile.PAX_FORMAT)))
    zeros = bytes(1 << 20)
    parts += [packer.compress(zeros) for _ in range(size >> 20)]
    parts.append(packer.compress(bytes(1024)) + packer.flush())
    return b"".join(parts)


@pytest.fixture
def evil(tmp_path: Path) -> dict[str, object]:
    """A pickle bento (its payload creates ``marker``), its files, and places nothing may be written to."""
    root = tmp_path / "crafted" / "evil"
    marker = tmp_path / "pwned"
    manifest = pickle_bento(root, marker)
    files = {entry["path"]: (root / entry["path"]).read_bytes() for entry in manifest["files"]}
    outside = tmp_path / "outside"
    outside.mkdir()
    return {"root": root, "marker": marker, "manifest": manifest, "files": files, "outside": outside}


def crafted_archives(evil: dict[str, object]) -> dict[str, bytes]:
    root: Path = evil["root"]  # type: ignore[assignment]
    files: dict[str, bytes] = evil["files"]  # type: ignore[assignment]
    outside: Path = evil["outside"]  # type: ignore[assignment]
    yaml = (root / "bento.yaml").read_bytes()
    good = [("bento.yaml", yaml), *files.items()]

    def edited(change: Callable[[dict], None]) -> bytes:
        manifest = json.loads(yaml)
        change(manifest)
        return json.dumps(manifest).encode()

    twins = root.parent / "twins"
    (twins / "src").mkdir(parents=True)
    (twins / "src" / "service.py").write_text("a = 1\n")
    (twins / "src" / "Service.py").write_text("b = 2\n")
    twin_manifest = write_manifest(
        twins, BentoManifest.model_validate({"kind": "bento", "name": "twins", "lineage": {}})
    )
    huge = json.dumps(
        {**twin_manifest.document, "files": [{"path": "models/zeros.bin", "size": 512 << 20, "sha256": "0" * 64}]}
    )
    small = json.dumps(
        {**twin_manifest.document, "files": [{"path": "models/zeros.bin", "size": 10, "sha256": "0" * 64}]}
    )

    def unholdable(*paths: str) -> bytes:
        """The bento plus ``paths`` (one byte each) listed in its manifest and present as members: paths the
        registry refuses at publish, because no filesystem can hold them all."""
        extra = [{"path": path, "size": 1, "sha256": "0" * 64} for path in paths]
        manifest = edited(lambda m: m["files"].extend(extra))
        return tar_bytes([("bento.yaml", manifest), *files.items(), *((path, b"x") for path in paths)])

    pax = tarfile.TarInfo("src/service.py")
    pax.pax_headers = {"comment": "x" * (4 << 20)}
    return {
        "a pickle, without --trust-code": tar_bytes(good),
        "path traversal ../": tar_bytes([*good, ("../outside/x.py", b"x")]),
        "traversal inside a path": tar_bytes([*good, ("src/../../outside/x.py", b"x")]),
        "absolute path": tar_bytes([*good, (str(outside / "abs.py"), b"x")]),
        "symlink pointing outside": tar_bytes(
            [("bento.yaml", yaml), header("models/m.pkl", tarfile.SYMTYPE, linkname=str(outside / "m.pkl"))]
        ),
        "symlink directory, then a file through it": tar_bytes(
            [("bento.yaml", yaml), header("src", tarfile.SYMTYPE, linkname=str(outside)), ("src/service.py", b"x")]
        ),
        "relative symlink inside": tar_bytes(
            [("bento.yaml", yaml), header("models/m.pkl", tarfile.SYMTYPE, linkname="../src/service.py")]
        ),
        "hard link to a file outside": tar_bytes(
            [("bento.yaml", yaml), header("models/m.pkl", tarfile.LNKTYPE, linkname="/etc/passwd")]
        ),
        "character device": tar_bytes([("bento.yaml", yaml), header("models/m.pkl", tarfile.CHRTYPE, devmajor=1)]),
        "FIFO": tar_bytes([("bento.yaml", yaml), header("models/m.pkl", tarfile.FIFOTYPE)]),
        "duplicate member replacing a verified file": tar_bytes([*good, ("src/service.py", b"import os\n")]),
        "names differing only in case": tar_bytes(
            [
                ("bento.yaml", (twins / "bento.yaml").read_bytes()),
                ("src/service.py", b"a = 1\n"),
                ("src/Service.py", b"b = 2\n"),
            ]
        ),
        "member the manifest does not list": tar_bytes([*good, ("src/sitecustomize.py", b"import os\n")]),
        "manifest not first": tar_bytes([*list(files.items()), ("bento.yaml", yaml)]),
        "manifest edited (kind pickle -> numpy)": tar_bytes(
            [("bento.yaml", yaml.replace(b'"kind": "pickle"', b'"kind": "numpy"')), *files.items()]
        ),
        "manifest naming an escaping store path": tar_bytes([("bento.yaml", edited(lambda m: m.update(name="../x")))]),
        "file altered, same size": tar_bytes(
            [("bento.yaml", yaml), *((p, d if p != "src/service.py" else b"#" * len(d)) for p, d in files.items())]
        ),
        "gzip bomb (512 MiB of zeros)": bomb(huge.encode(), "models/zeros.bin", 512 << 20),
        "member larger than the manifest says": bomb(small.encode(), "models/zeros.bin", 8 << 20),
        "pax header of 4 MiB": tar_bytes([("bento.yaml", yaml), pax]),
        "a path 2,000 directories deep": unholdable("models/" + "d/" * 2000 + "x"),
        "a second bento.yaml member": tar_bytes([*good, ("bento.yaml", b'{"name": "other"}')]),
        "a file and a directory of one name": unholdable("models/x", "models/x/y"),
        "a 300-byte name component": unholdable("models/" + "a" * 300),
        "a member named models/.": unholdable("models/."),
        "backslash path": unholdable("models\\..\\..\\x"),
        "empty archive": tar_bytes([]),
        "not an archive": b"PK\x03\x04 this is a zip, or nothing at all",
        "truncated gzip": tar_bytes(good)[:100],
    }


def test_an_exported_bento_imports_into_another_store_verified(tmp_path, monkeypatch, capsys):
    marker = tmp_path / "pwned"
    pickle_bento(tmp_path / "built", marker)
    (tmp_path / "built" / "bento.sig").write_text("{}")  # a signature travels with the bento
    source = Store("bentos", tmp_path / "a")
    item = source.add("evil", lambda work: [p.rename(work / p.name) for p in (tmp_path / "built").iterdir()])
    monkeypatch.setenv("BENTO_JUPYTER_HOME", str(tmp_path / "a"))
    assert main(["bentos", "export", "evil:1", str(tmp_path / "evil.bento")]) == 0
    monkeypatch.setenv("BENTO_JUPYTER_HOME", str(tmp_path / "b"))
    assert main(["bentos", "import", str(tmp_path / "evil.bento")]) == 2  # a pickle: refused without trust
    assert "--trust-code" in capsys.readouterr().err
    assert Store("bentos", tmp_path / "b").list() == []
    assert main(["bentos", "import", str(tmp_path / "evil.bento"), "--trust-code"]) == 0
    assert capsys.readouterr().out.strip() == "imported evil:1"
    imported = Store("bentos", tmp_path / "b").resolve("evil:1")
    assert read_manifest(imported.path) == read_manifest(item.path)
    assert (imported.path / "bento.sig").read_text() == "{}"
    assert main(["bentos", "import", str(tmp_path / "evil.bento")]) == 0  # the same digest: the stored copy
    assert [i.tag for i in Store("bentos", tmp_path / "b").list()] == ["evil:1"]
    assert not marker.exists()  # importing loads nothing


def snapshot(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_crafted_archives_are_refused_with_one_line_and_nothing_written(evil, tmp_path, monkeypatch, capsys):
    archives = crafted_archives(evil)
    assert len(archives) >= 15
    home = tmp_path / "home"
    monkeypatch.setenv("BENTO_JUPYTER_HOME", str(home))
    (tmp_path / "archives").mkdir()
    paths = {}
    for i, (label, data) in enumerate(archives.items()):
        paths[label] = tmp_path / "archives" / f"{i}.bento"
        paths[label].write_bytes(data)
    before = snapshot(tmp_path)
    wrong = []
    for label, path in paths.items():
        status = main(["bentos", "import", str(path)])
        err = capsys.readouterr().err
        if status != 2 or not err.startswith("bento-jupyter: error: ") or err.count("\n") != 1:
            wrong.append((label, status, err[-300:]))
    assert wrong == []
    assert not evil["marker"].exists()  # type: ignore[union-attr]
    assert Store("bentos", home).list() == []
    created = snapshot(tmp_path) - before
    assert {p for p in created if not p.startswith("home")} == set()  # nothing outside the store
    assert [p.name for p in (home / "bentos" / ".scratch").iterdir()] == []  # no partial import left


def test_each_refusal_names_what_is_wrong(evil, tmp_path, monkeypatch, capsys):
    archives = crafted_archives(evil)
    monkeypatch.setenv("BENTO_JUPYTER_HOME", str(tmp_path / "home"))
    expected = {
        "a pickle, without --trust-code": "--trust-code",
        "path traversal ../": "outside the destination",
        "absolute path": "absolute path",
        "symlink pointing outside": "a link",
        "hard link to a file outside": "a link to an absolute path",
        "character device": "special file",
        "duplicate member replacing a verified file": "appears twice",
        "names differing only in case": "names differing in case collide",
        "member the manifest does not list": "not one of the files the manifest lists",
        "manifest not first": "starts with its bento.yaml",
        "gzip bomb (512 MiB of zeros)": "decompression bomb",
        "member larger than the manifest says": "the manifest lists 10",
        "pax header of 4 MiB": "more than its manifest declares",
        "file altered, same size": "does not match its sha256",
        "a path 2,000 directories deep": "too long",
        "a second bento.yaml member": "'bento.yaml' appears twice",
        "a file and a directory of one name": "needs a directory",
        "a 300-byte name component": "over 255 bytes",
        "a member named models/.": "without '..' or '.'",
        "backslash path": "no backslashes",
    }
    for label, words in expected.items():
        path = tmp_path / "one.bento"
        path.write_bytes(archives[label])
        assert main(["bentos", "import", str(path)]) == 2, label
        assert words in capsys.readouterr().err, label
