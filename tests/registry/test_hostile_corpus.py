"""A hostile corpus against a real registry process and the CLI: every entry is refused with a 4xx (or exit
status 2) and a readable message, nothing lands outside the stores, and no payload runs (its marker stays absent)."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests

from bento_jupyter.bento.local_store import Store
from bento_jupyter.bento.manifest import manifest_digest, write_manifest
from bento_jupyter.bento.manifest_model import BentoManifest
from bento_jupyter.registry.client.remote import push
from tests.bento.hostile import pickle_bento
from tests.registry.conftest import RegistryProcess, create_database, make_bento

pytestmark = pytest.mark.integration

SHA = "0" * 64


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A registry process on SQLite or PostgreSQL, a bento ``good`` published to it, and the directories nothing
    may write outside of."""
    root = tmp_path_factory.mktemp(f"hostile-{request.param}")
    if request.param == "postgres":
        db = create_database(request.getfixturevalue("postgres_url"), f"hostile_{os.getpid()}")
    else:
        db = f"sqlite:///{root / 'db' / 'r.db'}"
    registry = RegistryProcess(db, f"file://{root / 'blobs'}", root / "home").start()
    local = Store("bentos", root / "local")
    make_bento(local, "good")
    push("good", registry.url, registry.tokens["write"], store=local)
    registry.marker = root / "pwned"  # type: ignore[attr-defined]
    registry.root = root  # type: ignore[attr-defined]
    yield registry
    registry.stop()


def snapshot(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def republished(manifest: dict[str, Any], change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """``manifest`` altered by ``change`` and re-digested: valid as JSON, hostile in content."""
    altered = copy.deepcopy(manifest)
    change(altered)
    altered["digest"] = manifest_digest(altered)
    return altered


def files(*paths: str) -> Callable[[dict[str, Any]], None]:
    def change(m: dict[str, Any]) -> None:
        m["files"] = [{"path": p, "size": 0, "sha256": hashlib.sha256(b"").hexdigest()} for p in paths]

    return change


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


NAMES = ["demo\n", "good\n", "Good", "..", "-x", "x-", "a" * 65, "a b", "d\u00e9", "\u0430bc", "x\x00", "good\r\n"]
LABELS = ["prod\n", "123", "latest", "PROD", "a" * 65, "\u00b2"]
VERSIONS = ["99999999999999999999999", "2147483648", "0", "-1", "\u00b2", "\u0661", "1.0", "0x1", " 1", "1\n"]
BODIES: list[tuple[str, Any]] = [
    ("version over 64 bits", {"version": 2**70, "expected": None}),
    ("expected over 64 bits", {"version": 1, "expected": 2**64}),
    ("version as text", {"version": "1", "expected": None}),
    ("version as bool", {"version": True, "expected": None}),
    ("version negative", {"version": -5, "expected": None}),
    ("body a list", [1, 2]),
    ("body null", None),
]
RAW_BODIES: list[tuple[str, bytes]] = [
    ("JSON nested 1,000 deep", nested(1000)),
    ("JSON nested 100,000 deep", nested(100_000)),
    ("JSON object nested 200 deep", b'{"a":' * 200 + b"1" + b"}" * 200),
    ("not JSON", b"{not json"),
    ("a 5,000-digit integer", b'{"version": ' + b"9" * 5000 + b', "expected": null}'),
]
MANIFESTS: list[tuple[str, Callable[[dict[str, Any]], None]]] = [
    ("file and directory", files("x", "x/y")),
    ("300-byte component", files("a" * 300)),
    ("2,000 levels", files("/".join(["d"] * 2000))),
    ("case-fold collision", files("Model.bin", "model.bin")),
    ("unicode case-fold collision", files("STRASSE", "stra\u00dfe")),
    ("escaping path", files("../../../../x.pkl")),
    ("absolute path", files("/etc/passwd")),
    ("backslash", files("models\\x.bin")),
    ("newline in path", files("x\n.bin")),
    ("drive letter", files("C:x.bin")),
    ("the manifest itself", files("bento.yaml")),
    ("size over 64 bits", lambda m: m["files"][0].update(size=2**64)),
    ("negative size", lambda m: m["files"][0].update(size=-1)),
    ("model file outside the list", lambda m: m.update(models=[{"name": "m", "kind": "pickle", "files": ["../x"]}])),
    ("source outside the list", lambda m: m.update(source="../../evil.py")),
    ("deep lineage", lambda m: m.update(lineage=json.loads(nested(200)))),
    ("files not a list", lambda m: m.update(files={"path": "x"})),
]


def test_the_hostile_corpus_is_refused_with_4xx_and_changes_nothing(target):
    good = target.api("GET", "/bentos/good/versions/1", "read").json()["manifest"]
    before = snapshot(target.root)
    answers: list[tuple[str, requests.Response]] = []

    def send(label: str, method: str, path: str, **kwargs: Any) -> None:
        answers.append((label, target.api(method, path, "admin", **kwargs)))

    for name in NAMES:
        segment = quote(name, safe="")
        send(f"name {name!r}", "GET", f"/bentos/{segment}/versions")
        send(f"publish name {name!r}", "POST", f"/bentos/{segment}/versions", json={**good, "name": name})
    for label in LABELS:
        send(
            f"alias {label!r}",
            "PUT",
            f"/bentos/good/aliases/{quote(label, safe='')}",
            json={"version": 1, "expected": None},
        )
        send(f"tag {label!r}", "PUT", f"/bentos/good/versions/1/tags/{quote(label, safe='')}")
    for version in VERSIONS:
        send(f"version {version!r}", "GET", f"/bentos/good/versions/{quote(version, safe='')}")
        send(f"delete version {version!r}", "DELETE", f"/bentos/good/versions/{quote(version, safe='')}")
    for label, body in BODIES:
        send(label, "PUT", "/bentos/good/aliases/prod", json=body)
    for label, raw in RAW_BODIES:
        send(label, "PUT", "/bentos/good/aliases/prod", data=raw, headers={"Content-Type": "application/json"})
        send(
            f"publish {label}", "POST", "/bentos/good/versions", data=raw, headers={"Content-Type": "application/json"}
        )
    for label, change in MANIFESTS:
        send(f"manifest: {label}", "POST", "/bentos/good/versions", json=republished(good, change))
    send("blob with a wrong digest", "PUT", f"/blobs/{SHA}", data=b"not zeros")
    send("blob digest in upper case", "PUT", f"/blobs/{'A' * 64}", data=b"x")
    send("blob path traversal", "GET", "/blobs/..%2F..%2Fdb%2Fr.db")
    send("search with NUL", "GET", "/search", params={"notebook": "a\x00b"})
    send("search by a name with a newline", "GET", "/search", params={"name": "good\n"})
    send("token with a bad scope", "POST", "/tokens", json={"scope": "root", "name": "x"})
    send("token with a newline name", "POST", "/tokens", json={"scope": "read", "name": "x\n"})
    # Text PostgreSQL cannot store (NUL, a lone surrogate) and ids that were never made.
    send(
        "alias reason with NUL",
        "PUT",
        "/bentos/good/aliases/prod",
        json={"version": 1, "expected": None, "reason": "a\x00"},
    )
    send("rollback reason with NUL", "POST", "/bentos/good/aliases/prod/rollback", json={"reason": "a\x00"})
    send("webhook secret with NUL", "POST", "/webhooks", json={"url": "http://127.0.0.1:9/", "secret": "s\x00" * 10})
    send("webhook URL with a space", "POST", "/webhooks", json={"url": "http://a b/"})
    send("webhook URL with NUL", "POST", "/webhooks", json={"url": "http://a\x00b/"})
    send("webhook id with NUL", "DELETE", "/webhooks/a%00b")
    send("webhook deliveries of an id with NUL", "GET", "/webhooks/a%00b/deliveries")
    send("token id with NUL", "DELETE", "/tokens/a%00b")
    send("token id of 5,000 characters", "DELETE", "/tokens/" + "a" * 5000)
    lone = b'{"version": 1, "expected": null, "reason": "\\ud800"}'
    send("lone surrogate", "PUT", "/bentos/good/aliases/prod", data=lone, headers={"Content-Type": "application/json"})
    raw = lone.replace(b"\\ud800", b"\xed\xa0\x80")  # the same surrogate as UTF-8 bytes
    send(
        "lone surrogate as bytes",
        "PUT",
        "/bentos/good/aliases/prod",
        data=raw,
        headers={"Content-Type": "application/json"},
    )
    send("version 1.5", "PUT", "/bentos/good/aliases/prod", json={"version": 1.5, "expected": None})
    send("search text over 1,024 characters", "GET", "/search", params={"commit": "a" * 1025})

    assert len(answers) >= 40
    wrong = [(label, r.status_code, r.text[:200]) for label, r in answers if not 400 <= r.status_code < 500]
    assert wrong == []
    for label, answer in answers:
        assert answer.headers["content-type"] == "application/json", label
        assert isinstance(answer.json().get("error"), str) and answer.json()["error"], label
    listed = target.api("GET", "/bentos", "read").json()["bentos"]
    assert [(b["name"], b["versions"]) for b in listed] == [("good", 1)]
    assert snapshot(target.root) == before  # no blob, no scratch file, nothing beside the database
    assert not target.marker.exists()
    assert "Traceback" not in target.output()  # refused up front, not by a failing database statement


def cli(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "BENTO_JUPYTER_HOME": str(home)}
    env.pop("BENTO_JUPYTER_REGISTRY_TOKEN", None)
    return subprocess.run(
        [sys.executable, "-m", "bento_jupyter.cli", *args], capture_output=True, text=True, env=env, timeout=120
    )


def crafted_bentos(root: Path, marker: Path) -> dict[str, Path]:
    """Bento directories an attacker hands over (as a download, an archive unpacked, a shared folder)."""
    made = {}
    made["pickle marked harmless"] = root / "pickle"
    pickle_bento(made["pickle marked harmless"], marker)

    made["model path escaping"] = root / "escape" / "b"
    (root / "escape" / "outside.pkl").parent.mkdir(parents=True)
    pickle_bento(made["model path escaping"], marker, files=["../../outside.pkl"])

    made["symlinked model"] = root / "symlink"
    pickle_bento(made["symlinked model"], marker)
    os.replace(made["symlinked model"] / "models" / "m.pkl", root / "elsewhere.pkl")
    (made["symlinked model"] / "models" / "m.pkl").symlink_to(root / "elsewhere.pkl")

    made["extra file"] = root / "extra"
    pickle_bento(made["extra file"], marker)
    (made["extra file"] / "src" / "sitecustomize.py").write_text(f"open({str(marker)!r}, 'w')\n")

    made["edited manifest"] = root / "edited"
    pickle_bento(made["edited manifest"], marker)
    text = (made["edited manifest"] / "bento.yaml").read_text()
    (made["edited manifest"] / "bento.yaml").write_text(text.replace('"kind": "pickle"', '"kind": "numpy"'))

    made["source outside"] = root / "source"
    pickle_bento(made["source outside"], marker)
    manifest = json.loads((made["source outside"] / "bento.yaml").read_text())
    write_manifest(
        made["source outside"], BentoManifest.model_validate({**manifest, "source": "../evil.py", "models": []})
    )
    (root / "evil.py").write_text(f"open({str(marker)!r}, 'w')\n")
    return made


def test_crafted_bentos_and_references_are_refused_by_the_cli(target, tmp_path):
    marker = tmp_path / "pwned"
    home = tmp_path / "home"
    bentos = crafted_bentos(tmp_path / "crafted", marker)
    outside_before = snapshot(tmp_path)
    runs = []
    for label, root in bentos.items():
        runs.append((f"serve {label}", cli(home, "serve", str(root), "--port", "0")))
        runs.append((f"deploy {label}", cli(home, "deploy", str(root), "--target", "ray", "-o", str(tmp_path / "d"))))
    remote = ["--url", target.url, "--token", target.tokens["read"]]
    for ref in ["good\n", "good:\u00b2", "good:99999999999999999999", "good@prod\n", "../etc:1", "good:0"]:
        runs.append((f"pull {ref!r}", cli(home, "pull", ref, *remote)))
    for tag in ["../../etc", "good:\u0661", "good\n"]:
        runs.append((f"show {tag!r}", cli(home, "bentos", "show", tag)))
    wrong = [(label, r.returncode, r.stderr[-300:]) for label, r in runs if r.returncode != 2]
    assert wrong == []
    assert all(r.stderr.startswith("bento-jupyter: error: ") and "Traceback" not in r.stderr for _, r in runs)
    assert not marker.exists()
    assert snapshot(tmp_path) - outside_before <= {str(p.relative_to(tmp_path)) for p in home.rglob("*")} | {
        "home"
    }  # only the (empty) store was created
    assert Store("bentos", home).list() == []
