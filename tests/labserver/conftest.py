"""One Jupyter server, one registry and one notebook session per test module: real processes on 127.0.0.1."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from jupyter_client.blocking import BlockingKernelClient

from tests.labserver.jupyter_process import JupyterServer, jupyter_server
from tests.labserver.kernel_calls import run_cell
from tests.registry.conftest import RegistryProcess, local_registry

DEMO_PATH = "work/demo.ipynb"
DEMO_CELLS = {
    "load-cell": "%load_ext bento_jupyter",
    "setup-cell": """\
import numpy as np
import torch

torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
model.register_buffer("scale", torch.ones(3))


class Threshold:
    \"\"\"A fitted-estimator stand-in: fit and predict, numpy state.\"\"\"

    def fit(self, x):
        self.cut = np.asarray(x, dtype=np.float64).mean(0)
        return self

    def predict(self, x):
        return (np.asarray(x) > self.cut).sum(1)


class Echo:
    def predict(self, x):
        return x


clf = Threshold().fit(np.arange(4000.0).reshape(1000, 4))
echo = Echo()
_private_model = torch.nn.Linear(2, 2)
table = {"a": 1}


def helper(x):
    return x
""",
    "serve-cell": """\
%%bento serve demo
from bento_jupyter import api


@api(batchable=True, max_batch_size=16, max_latency_ms=5)
def predict(inputs: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model(torch.as_tensor(inputs, dtype=torch.float32)).argmax(1).numpy()


@api
def threshold(inputs: list) -> list:
    return clf.predict(inputs).tolist()
""",
}


def write_demo_notebook(root: Path) -> Path:
    """The notebook the session opens: the cells the tests run, with the same ids."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source, id=cell_id) for cell_id, source in DEMO_CELLS.items()]
    path = root / DEMO_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def commit_all(root: Path) -> str:
    """Make ``root`` a git repository with everything committed; return the commit (lineage records it)."""

    def git(*args: str) -> str:
        command = ["git", "-C", str(root), "-c", "user.name=tester", "-c", "user.email=tester@example.com", *args]
        return subprocess.run(command, check=True, capture_output=True, text=True, timeout=30).stdout.strip()

    git("init", "-q", "-b", "main")
    git("add", "-A")
    git("commit", "-q", "-m", "demo")
    return head_commit(root)


def head_commit(root: Path) -> str:
    return subprocess.run(
        ["git", "-C", str(root), "rev-parse", "HEAD"], check=True, capture_output=True, text=True, timeout=30
    ).stdout.strip()


@pytest.fixture(scope="module")
def lab_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    """A token-protected registry (SQLite, local blobs) with read, write and admin tokens."""
    with local_registry(tmp_path_factory.mktemp("lab-registry")) as process:
        yield process


@pytest.fixture(scope="module")
def jupyter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    """``jupyter server`` with the demo notebook under its root and a bento store of its own."""
    base = tmp_path_factory.mktemp("jupyter")
    write_demo_notebook(base / "root")
    commit_all(base / "root")
    with jupyter_server(base) as server:
        yield server


@pytest.fixture(scope="module")
def demo(jupyter: JupyterServer) -> Iterator[BlockingKernelClient]:
    """The demo notebook opened as JupyterLab would (a session, so the kernel knows its path), all cells run."""
    kernel_id = jupyter.start_session(DEMO_PATH)
    with jupyter.kernel_client(kernel_id) as client:
        for cell_id, source in DEMO_CELLS.items():
            run_cell(client, source, cell_id)
        yield client
