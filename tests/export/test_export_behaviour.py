"""Headless export of small notebooks: parameters, failures, several services; and %bento export live."""

from __future__ import annotations

import json
import subprocess
import sys

import nbformat
import pytest
import requests
from nbclient.exceptions import CellExecutionError

from bento_jupyter.bento.manifest import read_manifest
from bento_jupyter.errors import ExportError
from bento_jupyter.export.notebook import export_notebook
from bento_jupyter.export.notebook_runner import CellIdNotebookClient
from tests.integration.bento_process import served_bento
from tests.integration.kernel_session import KernelSession

pytestmark = pytest.mark.integration
CLI = [sys.executable, "-m", "bento_jupyter.cli"]


def write_notebook(path, *sources, parameters_cell=None):
    cells = [nbformat.v4.new_code_cell(source) for source in sources]
    if parameters_cell is not None:
        cells[parameters_cell].metadata["tags"] = ["parameters"]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


SCALE_CELL = """%%bento serve scaler
def scale(x: float) -> float:
    return x * FACTOR
"""


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("BENTO_JUPYTER_HOME", str(tmp_path / "home"))


def test_an_injected_parameter_reaches_the_bundle(tmp_path, home):
    notebook = write_notebook(
        tmp_path / "scaler.ipynb", "%load_ext bento_jupyter", "FACTOR = 2", SCALE_CELL, parameters_cell=1
    )
    files = tmp_path / "params.yaml"
    files.write_text("FACTOR: 3\n")
    done = subprocess.run(
        [
            *CLI,
            "export",
            str(notebook),
            "-o",
            str(tmp_path / "out"),
            "--parameters-file",
            str(files),
            "-p",
            "FACTOR",
            "5",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    bundle = tmp_path / "out" / "scaler"
    assert "FACTOR = 5" in (bundle / "src" / "service.py").read_text()
    assert read_manifest(bundle).document["lineage"]["export"]["parameters"] == {"FACTOR": 5}
    with served_bento(str(tmp_path / "out")) as url:
        assert requests.post(f"{url}/scale", json={"x": 1.5}, timeout=10).json() == 7.5
    executed = nbformat.read(tmp_path / "out" / "notebook.ipynb", as_version=4)
    assert executed.cells[2].metadata["tags"] == ["injected-parameters"]
    assert nbformat.read(notebook, as_version=4).cells[2].source == SCALE_CELL, "the source notebook was modified"


DATED_CELL = """%%bento serve dated
from bento_jupyter import api

@api(examples=[{"days": 1}])
def label(days: int) -> str:
    return f"{RUN_DATE}+{days}"
"""


def test_an_export_reads_yaml_dates_as_text_and_verifies_the_bundle_with_the_apis_examples(tmp_path, home):
    notebook = write_notebook(
        tmp_path / "dated.ipynb", "%load_ext bento_jupyter", "RUN_DATE = 'never'", DATED_CELL, parameters_cell=1
    )
    (tmp_path / "params.yaml").write_text("RUN_DATE: 2024-01-31\n")
    command = [*CLI, "export", str(notebook), "-o", str(tmp_path / "out"), "--parameters-file"]
    done = subprocess.run([*command, str(tmp_path / "params.yaml")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    manifest = read_manifest(tmp_path / "out" / "dated")
    assert manifest.lineage.model_extra["export"]["parameters"] == {"RUN_DATE": "2024-01-31"}
    assert manifest.document["verification"] == {"state": "passed", "replayed": 1, "opted_out": []}
    with served_bento(str(tmp_path / "out")) as url:
        assert requests.post(f"{url}/label", json={"days": 2}, timeout=10).text == "2024-01-31+2"


def test_parameters_need_a_tagged_cell(tmp_path, home):
    notebook = write_notebook(tmp_path / "plain.ipynb", "%load_ext bento_jupyter", "FACTOR = 2", SCALE_CELL)
    with pytest.raises(ExportError, match="tagged 'parameters'"):
        export_notebook(notebook, tmp_path / "out", {"FACTOR": 3})
    assert not (tmp_path / "out").exists()


def test_a_failing_cell_is_named_and_nothing_is_exported(tmp_path, home):
    notebook = write_notebook(
        tmp_path / "broken.ipynb",
        "%load_ext bento_jupyter",
        SCALE_CELL.replace("scaler", "first").replace("FACTOR", "2"),
        "ratio = 1 / 0  # the bug\nprint(ratio)",
        SCALE_CELL,
    )
    nb_cell_id = nbformat.read(notebook, as_version=4).cells[2].id
    done = subprocess.run(
        [*CLI, "export", str(notebook), "-o", str(tmp_path / "out")], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 2
    message = done.stderr
    assert "cell 2" in message and nb_cell_id in message and "ratio = 1 / 0" in message
    assert "ZeroDivisionError" in message and "nothing was exported" in message
    assert [p.name for p in tmp_path.iterdir() if p.name != "home"] == ["broken.ipynb"], "something was written"


def test_a_notebook_serving_nothing_exports_nothing(tmp_path, home):
    notebook = write_notebook(tmp_path / "idle.ipynb", "x = 1")
    with pytest.raises(ExportError, match="no %%bento serve cell"):
        export_notebook(notebook, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_several_serving_cells_give_one_bundle_each(tmp_path, home):
    notebook = write_notebook(
        tmp_path / "two.ipynb",
        "%load_ext bento_jupyter\nFACTOR = 4",
        SCALE_CELL,
        "%%bento serve greeter\ndef greet(name: str) -> str:\n    return f'hi {name}'",
    )
    result = export_notebook(notebook, tmp_path / "out")
    assert sorted(b.name for b in result.bundles) == ["greeter", "scaler"]
    index = json.loads((tmp_path / "out" / "export.json").read_text())
    assert sorted(index["services"]) == ["greeter", "scaler"]
    refused = subprocess.run([*CLI, "serve", str(tmp_path / "out")], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "several bentos" in refused.stderr
    with served_bento(str(tmp_path / "out" / "greeter")) as url:
        assert requests.post(f"{url}/greet", json={"name": "ada"}, timeout=10).text == "hi ada"


@pytest.fixture
def live(tmp_path, home):
    notebook = write_notebook(tmp_path / "live.ipynb", "%load_ext bento_jupyter", "FACTOR = 3", SCALE_CELL)
    nb = nbformat.read(notebook, as_version=4)
    client = CellIdNotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    with client.setup_kernel():
        session = KernelSession(client, nb)
        for index in range(len(nb.cells)):
            session.run(index)
        yield session


def test_bento_export_writes_the_live_kernels_services(live, tmp_path):
    live.evaluate("FACTOR = 10  # changed after serving: the live state is what gets exported")
    printed = live.evaluate(f"%bento export -o {tmp_path / 'live-out'}")
    assert f"exported scaler to {tmp_path / 'live-out'}" in printed
    with served_bento(str(tmp_path / "live-out")) as url:
        assert requests.post(f"{url}/scale", json={"x": 2}, timeout=10).json() == 20
    lineage = read_manifest(tmp_path / "live-out" / "scaler").document["lineage"]
    assert lineage["export"]["executed_by"] == "%bento export"
    assert {c["cell_id"] for c in lineage["cells"]} == {live.nb.cells[2].id}
    with pytest.raises(CellExecutionError, match=r"not empty: .* pass --force"):
        live.evaluate(f"%bento export -o {tmp_path / 'live-out'}")
    assert "exported scaler" in live.evaluate(f"%bento export scaler -o {tmp_path / 'live-out'} --force")


def tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if "home" not in p.parts)


def test_a_relative_output_is_the_callers_and_a_failure_leaves_nothing_anywhere(tmp_path, home):
    """`-o dist/NAME` from a folder other than the notebook's: the bundle lands under the caller's folder; a failed
    export leaves no scratch directory there, in the notebook's folder, nor the `dist/` it would have created."""
    (tmp_path / "notebooks").mkdir()
    caller = tmp_path / "caller"
    caller.mkdir()
    write_notebook(tmp_path / "notebooks" / "good.ipynb", "%load_ext bento_jupyter\nFACTOR = 2", SCALE_CELL)
    write_notebook(tmp_path / "notebooks" / "bad.ipynb", "%load_ext bento_jupyter\nFACTOR = 2", SCALE_CELL, "1/0")
    before = tree(tmp_path)

    failed = subprocess.run(
        [*CLI, "export", "../notebooks/bad.ipynb", "-o", "dist/scaler"], cwd=caller, capture_output=True, text=True
    )
    assert failed.returncode == 2 and "ZeroDivisionError" in failed.stderr
    assert tree(tmp_path) == before, "a failed export left something behind"

    done = subprocess.run(
        [*CLI, "export", "../notebooks/good.ipynb", "-o", "dist/scaler"], cwd=caller, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert (caller / "dist" / "scaler" / "scaler" / "bento.yaml").is_file()
    assert not (tmp_path / "notebooks" / "dist").exists()
    assert read_manifest(caller / "dist" / "scaler" / "scaler").name == "scaler"
