"""Crafted OCI artifacts in a real Docker Distribution registry: layers that are archives, file paths that leave
the bento or clash, layers the manifest does not list, a bento bigger than the disk. ``oci pull`` refuses each
with one clear error before writing a file, and the store stays empty."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bento_jupyter.bento.local_store import Store
from bento_jupyter.bento.manifest import manifest_digest
from bento_jupyter.oci.artifact import FILEPATH, TITLE, Artifact, pull, push
from bento_jupyter.oci.distribution import DistributionClient
from bento_jupyter.oci.reference import OCIError, OCIReference
from tests.registry.conftest import make_bento

pytestmark = pytest.mark.integration

Change = Callable[[dict[str, Any], dict[str, Any]], None]  # (OCI manifest, bento manifest), changed in place


def _relabel(old: str, new: str) -> Change:
    """Rename a file in both the bento manifest and its layer (the bytes, so the digests, stay)."""

    def change(document: dict[str, Any], manifest: dict[str, Any]) -> None:
        for entry in manifest["files"]:
            if entry["path"] == old:
                entry["path"] = new
        for layer in document["layers"]:
            if layer["annotations"][FILEPATH] == old:
                layer["annotations"] = {FILEPATH: new, TITLE: new}

    return change


def _media_type(kind: str) -> Change:
    def change(document: dict[str, Any], manifest: dict[str, Any]) -> None:
        document["layers"][0]["mediaType"] = kind

    return change


def _duplicate_layer(document: dict[str, Any], manifest: dict[str, Any]) -> None:
    document["layers"].append(copy.deepcopy(document["layers"][0]))


def _case_twin(document: dict[str, Any], manifest: dict[str, Any]) -> None:
    twin = {**manifest["files"][0], "path": manifest["files"][0]["path"].upper()}
    manifest["files"].append(twin)
    layer = copy.deepcopy(document["layers"][0])
    layer["annotations"] = {FILEPATH: twin["path"], TITLE: twin["path"]}
    document["layers"].append(layer)


def _unlisted_layer(document: dict[str, Any], manifest: dict[str, Any]) -> None:
    layer = copy.deepcopy(document["layers"][0])
    layer["annotations"] = {FILEPATH: "src/sitecustomize.py", TITLE: "src/sitecustomize.py"}
    document["layers"].append(layer)


def _huge(document: dict[str, Any], manifest: dict[str, Any]) -> None:
    manifest["files"][0]["size"] = 2**60
    document["layers"][0]["size"] = 2**60


CRAFTED: dict[str, tuple[Change, str]] = {
    "a tar+gzip layer": (_media_type("application/vnd.oci.image.layer.v1.tar+gzip"), "not a raw file"),
    "a zip layer": (_media_type("application/zip"), "not a raw file"),
    "a path leaving the bento": (_relabel("src/service.py", "../../outside.py"), "invalid file path"),
    "an absolute path": (_relabel("src/service.py", "/tmp/outside.py"), "invalid file path"),
    "a path through a drive letter": (_relabel("src/service.py", "C:/outside.py"), "invalid file path"),
    "two layers with one path": (_duplicate_layer, "repeats one"),
    "paths differing only in case": (_case_twin, "listed twice"),
    "a layer the manifest does not list": (_unlisted_layer, "do not match the bento's file list"),
    "a bento larger than the disk": (_huge, "are free"),
}


def _publish(client: DistributionClient, artifact: Artifact, change: Change, tag: str) -> None:
    document = json.loads(artifact.manifest)
    config = next(body for body in artifact.blobs.values() if isinstance(body, bytes))
    manifest = json.loads(config)
    change(document, manifest)
    manifest["digest"] = manifest_digest(manifest)
    body = json.dumps(manifest).encode()
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    client.upload_blob(digest, body)
    document["config"].update(digest=digest, size=len(body))
    client.put_manifest(tag, json.dumps(document).encode(), document["mediaType"])


def test_crafted_artifacts_are_refused_before_anything_is_written(open_registry, tmp_path):
    source = Store("bentos", tmp_path / "source")
    item = make_bento(source, "demo")
    push("demo:1", open_registry.url("team/hostile", "good"), store=source)
    client = DistributionClient(OCIReference.parse(open_registry.url("team/hostile", "good")))
    artifact = Artifact.from_bento(item.path)
    local = Store("bentos", tmp_path / "home")
    before = {p for p in Path(tmp_path).rglob("*")}
    wrong = []
    for i, (label, (change, words)) in enumerate(CRAFTED.items()):
        _publish(client, artifact, change, f"crafted{i}")
        try:
            pull(open_registry.url("team/hostile", f"crafted{i}"), store=local)
            wrong.append((label, "accepted"))
        except OCIError as exc:
            if words not in str(exc):
                wrong.append((label, str(exc)))
    assert wrong == []
    assert local.list() == [] and list((local.root / ".scratch").iterdir()) == []
    assert {p for p in Path(tmp_path).rglob("*")} == before
    assert pull(open_registry.url("team/hostile", "good"), store=local).item.tag == "demo:1"  # the honest one
