"""Every notebook in notebooks/ exported headlessly, each bundle served from a fresh process."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from dockerfile_parse import DockerfileParser

from bento_jupyter.bento.manifest import read_manifest
from tests.export.references import SERVICES, answers, export_all, reference_calls
from tests.integration.bento_process import free_port, served_bento, wait_ready
from tests.integration.kernel_session import NOTEBOOKS

pytestmark = pytest.mark.integration
CLI = [sys.executable, "-m", "bento_jupyter.cli"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")  # text_classifier's own %bento build writes into this store
    patch = pytest.MonkeyPatch()
    patch.setenv("BENTO_JUPYTER_HOME", str(home))
    try:
        yield export_all(tmp_path_factory.mktemp("dist"))
    finally:
        patch.undo()


@pytest.mark.parametrize("service", sorted(SERVICES.values()))
def test_a_served_bundle_answers_like_the_notebook(exported, service):
    calls = reference_calls(exported[service])
    with served_bento(str(exported[service])) as url:
        assert answers(url, calls) == [call.expected for call in calls]


def test_the_layout_is_one_bundle_per_service_an_index_and_the_executed_notebook(exported):
    for name, directory in exported.items():
        assert sorted(p.name for p in directory.iterdir()) == sorted(["export.json", name, "notebook.ipynb"])
        index = json.loads((directory / "export.json").read_text())
        assert index["services"][name]["digest"] == read_manifest(directory / name).digest


@pytest.mark.parametrize("notebook", sorted(SERVICES))
def test_lineage_records_the_notebook_its_digest_and_the_cells_used(exported, notebook):
    root = exported[SERVICES[notebook]] / SERVICES[notebook]
    lineage = read_manifest(root).document["lineage"]
    path = NOTEBOOKS / notebook
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert lineage["notebook_path"] == str(path)
    assert lineage["export"]["notebook_sha256"] == digest and lineage["export"]["notebook_path"] == str(path)
    sources = {c.id: c.source for c in nbformat.read(path, as_version=4).cells}
    assert lineage["cells"], "no cell recorded"
    for cell in lineage["cells"]:
        assert hashlib.sha256(sources[cell["cell_id"]].encode()).hexdigest() == cell["source_sha256"]


def test_exploration_cells_stay_out_of_the_bundle(exported):
    source = (exported["spam"] / "spam" / "src" / "service.py").read_text()
    assert "def classify" in source and "class TinyTextNet" in source
    assert "Exploration only" not in source and "ALPHABET" not in source
    assert "ThreadPoolExecutor" not in (exported["iris"] / "iris" / "src" / "service.py").read_text()


def test_the_dockerfile_is_slim_non_root_cached_probed_and_served_by_its_entrypoint(exported):
    parser = DockerfileParser(path=str(exported["iris"] / "iris" / "env" / "Dockerfile"))
    steps = [(i["instruction"], i["value"]) for i in parser.structure]
    kinds = [kind for kind, _ in steps]
    assert parser.baseimage.startswith("python:3.") and parser.baseimage.endswith("-slim")
    user = next(value for kind, value in steps if kind == "USER")
    assert user not in ("root", "0")
    copies = [i for i, (kind, _) in enumerate(steps) if kind == "COPY"]
    install = next(i for i, (kind, value) in enumerate(steps) if kind == "RUN" and "pip install" in value)
    assert "requirements.txt" in steps[copies[0]][1] and steps[copies[-1]][1].endswith(". .")
    assert copies[0] < install < copies[-1], "pinned requirements must be installed before the code is copied"
    assert {"EXPOSE", "HEALTHCHECK", "ENTRYPOINT"} <= set(kinds)
    assert "PORT" in parser.envs


def test_the_entrypoint_serves_the_bundle_on_port(exported):
    root = exported["iris"] / "iris"
    port = free_port()
    env = {**os.environ, "PORT": str(port), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    process = subprocess.Popen(
        ["sh", str(root / "env" / "entrypoint.sh"), "--host", "127.0.0.1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        url = wait_ready(process, port, 60)
        calls = reference_calls(exported["iris"])
        assert answers(url, calls) == [call.expected for call in calls]
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(15)


def test_the_cli_refuses_a_non_empty_directory_unless_forced(exported, tmp_path):
    out = tmp_path / "dist"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    notebook = str(NOTEBOOKS / "quickstart.ipynb")
    refused = subprocess.run([*CLI, "export", notebook, "-o", str(out)], capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "not empty" in refused.stderr and "--force" in refused.stderr
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    forced = subprocess.run(
        [*CLI, "export", notebook, "-o", str(out), "--force"], capture_output=True, text=True, timeout=300
    )
    assert forced.returncode == 0, forced.stderr[-2000:]
    assert f"exported iris to {out / 'iris'}" in forced.stdout
    assert sorted(p.name for p in out.iterdir()) == ["export.json", "iris", "notebook.ipynb"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "a scratch directory was left behind"
