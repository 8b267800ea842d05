"""The bento format and the local store: stable digests, tamper detection, atomic versions."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bento_jupyter.bento.dockerfile import render_dockerfile
from bento_jupyter.bento.local_store import Store
from bento_jupyter.bento.manifest import canonical_json, read_manifest, write_manifest
from bento_jupyter.bento.manifest_model import BentoManifest, FileEntry
from bento_jupyter.errors import BentoIntegrityError, BentoNotFoundError


def make_bento(root: Path) -> dict:
    (root / "src").mkdir()
    (root / "src" / "service.py").write_text("x = 1\n")
    (root / "models").mkdir()
    (root / "models" / "w.bin").write_bytes(b"\x00" * 1000)
    return write_manifest(
        root, BentoManifest.model_validate({"kind": "bento", "name": "demo", "lineage": {"b": 1, "a": [1, 2]}})
    )


def test_manifest_is_canonical_and_its_digest_is_stable(tmp_path):
    first_root, second_root = tmp_path / "one", tmp_path / "two"
    first_root.mkdir()
    second_root.mkdir()
    first, second = make_bento(first_root), make_bento(second_root)
    assert first.digest == second.digest
    assert canonical_json({"b": 1, "a": 2}) == b'{"a":2,"b":1}'
    assert read_manifest(second_root).files[0] == FileEntry(
        path="models/w.bin", size=1000, sha256=first.files[0].sha256
    )


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda r: (r / "models" / "w.bin").write_bytes(b"\x01" + b"\x00" * 999), "does not match its sha256"),
        (lambda r: (r / "models" / "w.bin").write_bytes(b"\x00" * 10), "wrong size"),
        (lambda r: (r / "src" / "service.py").unlink(), "missing"),
        (lambda r: (r / "src" / "extra.py").write_text("import os"), "not in the manifest"),
        (lambda r: (r / "bento.yaml").write_text((r / "bento.yaml").read_text().replace("demo", "evil")), "digest"),
        (lambda r: (r / "bento.yaml").write_text("{ truncated"), "corrupt"),
    ],
)
def test_tampered_or_truncated_bentos_are_refused(tmp_path, damage, message):
    make_bento(tmp_path)
    damage(tmp_path)
    with pytest.raises(BentoIntegrityError, match=message):
        read_manifest(tmp_path)


def test_store_versions_latest_list_and_delete(tmp_path):
    store = Store("bentos", tmp_path)
    first = store.add("demo", make_bento)
    second = store.add("demo", make_bento)
    assert (first.tag, second.tag) == ("demo:1", "demo:2")
    assert store.resolve("demo").tag == store.resolve("demo:latest").tag == "demo:2"
    assert [i.tag for i in store.list()] == ["demo:1", "demo:2"]
    store.delete("demo:1")
    assert [i.tag for i in store.list()] == ["demo:2"]
    with pytest.raises(BentoNotFoundError):
        store.resolve("demo:1")
    with pytest.raises(ValueError, match="invalid name"):
        store.resolve("../../etc")


def test_a_failed_build_leaves_no_version(tmp_path):
    store = Store("bentos", tmp_path)

    def broken(root: Path) -> None:
        make_bento(root)
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        store.add("demo", broken)
    assert store.list() == []
    assert list((tmp_path / "bentos" / ".scratch").iterdir()) == []


CONCURRENT_BUILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from bento_jupyter.bento.local_store import Store
    from bento_jupyter.bento.manifest import write_manifest
    from bento_jupyter.bento.manifest_model import BentoManifest

    def fill(root):
        (root / "f").write_text(sys.argv[2])
        time.sleep(0.5)  # both builds are in flight at once
        write_manifest(root, BentoManifest.model_validate({"kind": "bento", "name": "demo", "lineage": {}}))

    print(Store("bentos", Path(sys.argv[1])).add("demo", fill).version)
    """
)


def test_concurrent_builds_of_one_name_get_distinct_versions(tmp_path):
    builds = [
        subprocess.Popen([sys.executable, "-c", CONCURRENT_BUILD, str(tmp_path), str(i)], stdout=subprocess.PIPE)
        for i in range(3)
    ]
    versions = sorted(int(p.communicate(timeout=60)[0]) for p in builds)
    assert versions == [1, 2, 3]
    store = Store("bentos", tmp_path)
    assert {(i.path / "f").read_text() for i in store.list()} == {"0", "1", "2"}


KILLED_BUILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from bento_jupyter.bento.local_store import Store

    def fill(root):
        with (root / "big.bin").open("wb") as out:
            while True:
                out.write(b"\\0" * (1 << 20)); out.flush(); time.sleep(0.01)

    Store("bentos", Path(sys.argv[1])).add("demo", fill)
    """
)


def test_a_build_killed_half_way_leaves_the_store_consistent(tmp_path):
    build = subprocess.Popen([sys.executable, "-c", KILLED_BUILD, str(tmp_path)])
    scratch = tmp_path / "bentos" / ".scratch"
    for _ in range(500):
        if scratch.exists() and any(p.stat().st_size > 0 for p in scratch.rglob("big.bin")):
            break
        subprocess.run(["sleep", "0.02"], check=True)
    build.kill()  # SIGKILL: no cleanup handler runs
    build.wait(10)
    store = Store("bentos", tmp_path)
    assert store.list() == []
    assert store.add("demo", make_bento).tag == "demo:1"
    read_manifest(store.resolve("demo:1").path)


@pytest.mark.parametrize(
    ("name", "python"), [("demo\nRUN curl evil", "3.11"), ("demo", "3.11; rm -rf /"), ("Demo", "3.11")]
)
def test_dockerfile_refuses_injected_values(name, python):
    with pytest.raises(ValueError):
        render_dockerfile(name, python)


def test_dockerfile_pins_requirements_first_and_runs_as_non_root():
    text = render_dockerfile("iris", "3.11")
    assert text.index("requirements.txt") < text.index("COPY --chown")
    assert "USER bento" in text and "EXPOSE 3000" in text and "HEALTHCHECK" in text
    assert json.loads(text.split("ENTRYPOINT ", 1)[1]) == ["sh", "env/entrypoint.sh"]
