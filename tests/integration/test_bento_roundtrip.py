"""Build a bento in a real kernel, then serve it from a fresh process with the kernel gone."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from bento_jupyter.bento.manifest import read_manifest
from tests.integration.bento_process import served_bento
from tests.integration.kernel_session import notebook_in_kernel

pytestmark = pytest.mark.integration
PROBES = ["cheap pills", "lunch at noon", "win now", "meeting"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Run notebooks/text_classifier.ipynb against a private store; return its outputs and the bento."""
    home = tmp_path_factory.mktemp("bento-home")
    patch = pytest.MonkeyPatch()
    patch.setenv("BENTO_JUPYTER_HOME", str(home))
    try:
        with notebook_in_kernel("text_classifier.ipynb") as session:
            in_kernel = json.loads(session.text_of(session.cell_index(r"^PROBES =")))
            build_output = session.text_of(session.cell_index(r"^%bento build spam"))
            cells = {c.id: c.source for c in session.nb.cells}
        # the kernel is gone from here on
        yield {"home": home, "in_kernel": in_kernel, "build_output": build_output, "cells": cells}
    finally:
        patch.undo()


def test_build_reports_the_new_version(built):
    assert "built bento spam:1" in built["build_output"]


def test_the_bento_holds_only_the_code_the_handlers_need(built):
    root = built["home"] / "bentos" / "spam" / "1"
    source = (root / "src" / "service.py").read_text()
    for needed in ("class TinyTextNet", "def tokenize", "def encode_batch", "def classify", "VOCAB = "):
        assert needed in source
    for unrelated in ("Exploration only", "optimizer", "mean length", "ALPHABET"):
        assert unrelated not in source
    compile(source, "service.py", "exec")
    manifest = read_manifest(root)
    (model,) = manifest.models
    assert model.kind == "torch" and not model.executes_code
    assert sorted(p.name for p in (root / "models").iterdir()) == ["model.arch.pt", "model.safetensors"]
    assert any(r.startswith("torch==") for r in manifest.requirements)
    assert (root / "env" / "Dockerfile").exists() and (root / "env" / "requirements.txt").exists()
    routes = {r["name"]: r for r in (manifest.service_schema or {})["routes"]}
    assert routes["classify"]["batchable"] and "/classify" in (manifest.openapi or {})["paths"]


def test_lineage_records_the_cells_used_with_ids_and_hashes(built):
    lineage = read_manifest(built["home"] / "bentos" / "spam" / "1").document["lineage"]
    recorded = {c["cell_id"]: c for c in lineage["cells"]}
    assert len(recorded) == 4  # model class, tokenizer, training (encode_batch), serving cell
    for cell_id, cell in recorded.items():
        source = built["cells"][cell_id]
        assert cell["source_sha256"] == hashlib.sha256(source.encode()).hexdigest()
        assert cell["execution_count"] >= 1
    assert {"python", "platform", "built_at", "built_by", "kernel_id"} <= set(lineage)


def test_cli_lists_and_shows_the_bento_with_its_lineage(built, monkeypatch):
    monkeypatch.setenv("BENTO_JUPYTER_HOME", str(built["home"]))
    cli = [sys.executable, "-m", "bento_jupyter.cli"]
    listing = subprocess.run([*cli, "bentos", "list"], capture_output=True, text=True, check=True).stdout
    assert "spam:1" in listing and "classify,tokens" in listing
    shown = subprocess.run([*cli, "bentos", "show", "spam:1"], capture_output=True, text=True, check=True).stdout
    assert "digest sha256:" in shown and "cell " in shown and "api POST /classify batched" in shown


def test_a_fresh_process_serves_the_same_answers_as_the_kernel(built, monkeypatch):
    monkeypatch.setenv("BENTO_JUPYTER_HOME", str(built["home"]))
    with served_bento("spam:latest") as url:
        classify = requests.post(f"{url}/classify", json={"texts": PROBES}, timeout=10).json()
        tokens = requests.post(f"{url}/tokens", json={"text": "Hi there"}, timeout=10).json()
        schema = requests.get(f"{url}/schema.json", timeout=5).json()
        metrics = requests.get(f"{url}/metrics", timeout=5).text
    assert {"classify": classify, "tokens": tokens} == built["in_kernel"]
    assert {r["name"] for r in schema["routes"]} == {"classify", "tokens"}
    assert "bentoml_service_adaptive_batch_size" in metrics


def test_two_workers_serve_the_same_answers(built, monkeypatch):
    monkeypatch.setenv("BENTO_JUPYTER_HOME", str(built["home"]))
    with served_bento("spam:1", "--workers", "2") as url:
        answers = [requests.post(f"{url}/classify", json={"texts": PROBES}, timeout=10).json() for _ in range(4)]
    assert answers == [built["in_kernel"]["classify"]] * 4


def test_a_tampered_model_file_is_refused_on_load(built, tmp_path):
    copy = tmp_path / "spam"
    subprocess.run(["cp", "-r", str(built["home"] / "bentos" / "spam" / "1"), str(copy)], check=True)
    weights = copy / "models" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    done = subprocess.run(
        [sys.executable, "-m", "bento_jupyter.cli", "serve", str(copy), "--port", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "models/model.safetensors does not match its sha256" in done.stderr
    assert Path(copy).exists()
