"""A corpus of notebook idioms, each captured from a real kernel (cells sent with their ids), built and
verified by ``%bento build``, then served by ``bento-jupyter serve`` in a fresh process with the kernel gone:
the bento must answer exactly what the kernel answered."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import requests
from packaging.utils import canonicalize_name

from bento_jupyter.bento.manifest import read_manifest
from bento_jupyter.export.notebook_runner import CellIdNotebookClient
from tests.integration.bento_process import free_port, wait_ready
from tests.integration.corpus.idioms import IDIOMS, Idiom

pytestmark = pytest.mark.integration
SERVERS_AT_ONCE = 7  # fresh serve processes started together (each imports numpy, some torch or sklearn)

PROBE = """import json as _json, requests as _requests
from bento_jupyter.server.running import services as _services
_url = _services.get({name!r}).url
_answers = [_requests.post(_url + "/handler", json=_b, timeout=30) for _b in {inputs!r}]
print(_json.dumps([_a.json() if "json" in _a.headers["content-type"] else _a.text for _a in _answers]))"""


def notebook_of(idiom: Idiom) -> nbformat.NotebookNode:
    """The idiom as a small notebook: setup, serving cell, a call, state changes, a second call, the build."""
    probe = PROBE.format(name=idiom.name, inputs=list(idiom.inputs))
    sources = [
        "%load_ext bento_jupyter",
        *idiom.cells,
        f"%%bento serve {idiom.name}\n{idiom.serve}",
        probe,
        idiom.after or "pass",
        probe,  # the kernel's answers as the build captures its state
        f"%bento build {idiom.name}",
        f"%bento stop {idiom.name}\n%reset -f",
    ]
    cells = [nbformat.v4.new_code_cell(source) for source in sources]
    for index, cell in enumerate(cells):
        cell.id = f"{idiom.name}-{index}"
    return nbformat.v4.new_notebook(
        cells=cells, metadata={"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}}
    )


def run_in_one_kernel(notebooks: dict[str, nbformat.NotebookNode], home: Path, cwd: Path) -> dict[str, list]:
    """Execute every notebook, one after another, in one kernel; the kernel's answers per idiom at build time
    (asked again after the state changed: the answers the build replays)."""
    combined = nbformat.v4.new_notebook(cells=[c for nb in notebooks.values() for c in nb.cells])
    client = CellIdNotebookClient(
        combined, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    )
    answers = {}
    with client.setup_kernel(env={**os.environ, "BENTO_JUPYTER_HOME": str(home)}):
        for index, cell in enumerate(combined.cells):
            client.execute_cell(cell, index)
    for name, nb in notebooks.items():
        answers[name] = json.loads(nb.cells[-3].outputs[0]["text"])
        assert f"built bento {name}:1" in "".join(o.get("text", "") for o in nb.cells[-2].outputs)
    return answers


def ask_fresh_processes(idioms: tuple[Idiom, ...], home: Path) -> dict[str, list]:
    """Serve each bento from its own ``bento-jupyter serve`` process, a few at a time; their answers."""
    env = {**os.environ, "BENTO_JUPYTER_HOME": str(home)}
    answers = {}
    for start in range(0, len(idioms), SERVERS_AT_ONCE):
        group = idioms[start : start + SERVERS_AT_ONCE]
        ports = [free_port() for _ in group]
        processes = [
            subprocess.Popen(
                [sys.executable, "-m", "bento_jupyter.cli", "serve", f"{i.name}:1", "--port", str(p), "--trust-code"],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for i, p in zip(group, ports, strict=True)
        ]
        try:
            for idiom, process, port in zip(group, processes, ports, strict=True):
                url = wait_ready(process, port, timeout=120)
                replies = [requests.post(f"{url}/handler", json=body, timeout=30) for body in idiom.inputs]
                answers[idiom.name] = [r.json() if "json" in r.headers["content-type"] else r.text for r in replies]
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(15)
    return answers


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    pytest.importorskip("sklearn")
    home = tmp_path_factory.mktemp("corpus-home")
    work = tmp_path_factory.mktemp("corpus-notebooks")
    notebooks = {idiom.name: notebook_of(idiom) for idiom in IDIOMS}
    for name, nb in notebooks.items():
        nbformat.write(nb, work / f"{name}.ipynb")
    in_kernel = run_in_one_kernel(notebooks, home, work)
    # the kernel is gone from here on
    served = ask_fresh_processes(IDIOMS, home)
    return {"home": home, "in_kernel": in_kernel, "served": served}


def test_the_corpus_covers_at_least_25_idioms():
    assert len({idiom.name for idiom in IDIOMS}) == len(IDIOMS) >= 25


@pytest.mark.parametrize("idiom", IDIOMS, ids=lambda idiom: idiom.name)
def test_a_fresh_process_answers_what_the_kernel_answered(corpus, idiom):
    assert corpus["served"][idiom.name] == corpus["in_kernel"][idiom.name]
    manifest = read_manifest(corpus["home"] / "bentos" / idiom.name / "1")
    assert manifest.verification is not None and manifest.verification.state == "passed"
    pins = {canonicalize_name(line.split("==")[0]): line.split("==")[1] for line in manifest.requirements}
    assert {canonicalize_name(name) for name in idiom.requires} <= set(pins), manifest.requirements
    lock_file = corpus["home"] / "bentos" / idiom.name / "1" / str(manifest.requirements_lock)
    lines = [line for line in lock_file.read_text().splitlines() if "==" in line]  # not installed: kept as written
    locked = {canonicalize_name(line.split("==")[0]): line.split("==")[1] for line in lines}
    assert pins.items() <= locked.items()  # the lock pins what the requirements pin, and more
    # the latest answer to each request is the one replayed: state changed after serving was asked again
    assert manifest.verification.replayed == len({json.dumps(body, sort_keys=True) for body in idiom.inputs})
