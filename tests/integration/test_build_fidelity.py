"""What ``%bento build`` proves, in a real kernel: it replays the answers the service gave (streams included)
in a fresh process without running a handler in the kernel again, says loudly when there was nothing to
replay, and refuses a bento that would fail where the kernel answered."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

from bento_jupyter.bento.manifest import read_manifest
from bento_jupyter.export.notebook_runner import CellIdNotebookClient

pytestmark = pytest.mark.integration


class Kernel:
    """One live kernel; ``run`` executes a new cell (with an id) and returns everything it printed."""

    def __init__(self, client: CellIdNotebookClient, nb: nbformat.NotebookNode) -> None:
        self.client, self.nb = client, nb

    def run(self, source: str) -> str:
        cell = nbformat.v4.new_code_cell(source)
        cell.id = f"cell-{len(self.nb.cells)}"
        self.nb.cells.append(cell)
        self.client.execute_cell(cell, len(self.nb.cells) - 1)
        parts = []
        for output in cell.outputs:
            parts.append(output.get("text") or output.get("data", {}).get("text/plain", ""))
            if output["output_type"] == "error":
                parts.append(f"{output['ename']}: {output['evalue']}")
        return "".join(parts)


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fidelity-home")


@pytest.fixture(scope="module")
def kernel(home, tmp_path_factory) -> Iterator[Kernel]:
    nb = nbformat.v4.new_notebook(
        metadata={"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}}
    )
    cwd = tmp_path_factory.mktemp("fidelity-notebooks")
    client = CellIdNotebookClient(
        nb, timeout=180, kernel_name="python3", allow_errors=True, resources={"metadata": {"path": str(cwd)}}
    )
    with client.setup_kernel(env={**os.environ, "BENTO_JUPYTER_HOME": str(home)}):
        session = Kernel(client, nb)
        session.run("%load_ext bento_jupyter\n%config BentoMagics.show_panel = False")
        session.run("import requests\nfrom bento_jupyter import api, service_url")
        yield session


def verify(home: Path, target: str) -> subprocess.CompletedProcess:
    return cli(home, "verify", target, "--trust-code")


def cli(home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bento_jupyter.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "BENTO_JUPYTER_HOME": str(home)},
    )


def post(name: str, route: str, body: dict) -> str:
    return f"requests.post(service_url({name!r}) + {route!r}, json={body!r}, timeout=30).raise_for_status()"


def test_a_build_with_nothing_to_replay_is_marked_not_verified_everywhere(kernel, home):
    kernel.run("SCALE = 2.0")
    kernel.run("%%bento serve quiet\ndef handler(x: float) -> float:\n    return x * SCALE")
    kernel.run("del SCALE")  # broken: the bento cannot answer, and no request shows it
    out = kernel.run("%bento build quiet")
    assert "cannot capture 'handler': it uses 'SCALE'" in out  # refused: the kernel no longer has SCALE
    kernel.run("SCALE = 2.0")
    out = kernel.run("%bento build quiet")
    assert "NOT VERIFIED: no answered request to replay (handler)" in out and "verified: " not in out
    manifest = read_manifest(home / "bentos" / "quiet" / "1")
    assert manifest.document["verification"] == {
        "state": "unverified",
        "replayed": 0,
        "opted_out": [],
        "unsampled": ["handler"],
    }
    done = verify(home, "quiet:1")
    assert done.returncode == 3 and "NOT VERIFIED" in done.stdout
    shown = cli(home, "bentos", "show", "quiet:1")
    assert "NOT VERIFIED: no answered request to replay (handler)" in shown.stdout
    assert "NOT VERIFIED: no answered request to replay (handler)" in serve_banner(home, "quiet:1")
    kernel.run(post("quiet", "/handler", {"x": 1.5}) + "\n" + "%bento stop quiet")


def serve_banner(home: Path, target: str) -> str:
    """What ``bento-jupyter serve`` prints up to the line saying where it serves (then it is stopped)."""
    server = subprocess.Popen(
        [sys.executable, "-m", "bento_jupyter.cli", "serve", target, "--port", "0", "--trust-code"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "BENTO_JUPYTER_HOME": str(home)},
    )
    lines = []
    try:
        assert server.stdout is not None
        for line in server.stdout:
            lines.append(line)
            if line.startswith("serving "):
                break
    finally:
        server.terminate()
        server.wait(timeout=30)
    return "".join(lines)


@pytest.mark.parametrize("calls", [1, 3])
def test_a_build_runs_no_handler_in_the_kernel(kernel, home, calls):
    """Side effects happen once per request the service answered (and once per example, at serve time)."""
    name = f"effects-{calls}"
    kernel.run("CALLS = []")
    kernel.run(
        f"%%bento serve {name}\n@api(examples=[{{'x': 100}}])\ndef handler(x: int) -> int:\n"
        "    CALLS.append(x)\n    return x + 1"
    )
    kernel.run("\n".join(post(name, "/handler", {"x": i}) for i in range(calls)))
    before = kernel.run("print(len(CALLS))")
    out = kernel.run(f"%bento build {name}")
    assert f"verified: {calls + 1} sample(s) answered as the kernel did" in out
    assert kernel.run("print(len(CALLS))") == before == f"{calls + 1}\n"
    kernel.run(f"%bento stop {name}")


def test_a_helper_deleted_after_serving_refuses_the_build_naming_it_and_its_cell(kernel, home):
    kernel.run("def helper(v):\n    return [x * 3 for x in v]")
    helper_cell = kernel.nb.cells[-1].id
    kernel.run("%%bento serve orphan\ndef handler(v: list) -> list:\n    return helper(v)")
    kernel.run(post("orphan", "/handler", {"v": [1, 2]}))
    kernel.run("del helper")
    out = kernel.run("%bento build orphan")
    assert f"cannot capture 'handler': it uses 'helper', which cell {helper_cell}" in out
    assert "run that cell again" in out and "Traceback" not in out
    assert not (home / "bentos" / "orphan").exists()
    kernel.run("%bento stop orphan")


STREAM = """%%bento serve {name}
from collections.abc import Iterator

@api
def words(prompt: str, n: int = 3) -> Iterator[dict]:
    for i in range(n):
        yield {{"word": f"{{prompt}}-{{i}}", "weight": i * GAIN}}
"""


def test_streams_are_sampled_item_by_item_and_replayed(kernel, home):
    kernel.run("GAIN = 0.5")
    kernel.run(STREAM.format(name="streamer"))
    kernel.run(post("streamer", "/words", {"prompt": "a", "n": 4}) + "\n" + post("streamer", "/words", {"prompt": "b"}))
    out = kernel.run("%bento build streamer")
    assert "verified: 2 sample(s) answered as the kernel did" in out, out
    root = home / "bentos" / "streamer" / "1"
    samples = json.loads((root / "verify" / "samples.json").read_text())["apis"]["words"]
    assert samples["stream"] and [e["response"] for e in samples["exchanges"]][1] == [
        {"word": "b-0", "weight": 0.0},
        {"word": "b-1", "weight": 0.5},
        {"word": "b-2", "weight": 1.0},
    ]
    assert verify(home, "streamer:1").returncode == 0
    # a deliberately broken capture of what the stream reads is caught item by item
    kernel.run(
        "from bento_jupyter.capture import slicer as _slicer\n_literal = _slicer.literal_source\n"
        "_slicer.literal_source = lambda v: '9.0' if v == 0.5 else _literal(v)"
    )
    out = kernel.run("%bento build streamer")
    kernel.run("_slicer.literal_source = _literal")
    assert "the bento was not stored: 2 of 2 sample(s) answered differently" in out
    assert "$[1].weight: the kernel answered 0.5, the bento 9.0" in out
    assert not (home / "bentos" / "streamer" / "2").exists()
    kernel.run("%bento stop streamer")


def test_state_changed_after_serving_is_a_difference_until_the_request_is_asked_again(kernel, home):
    kernel.run("RATE = 2")
    kernel.run("%%bento serve drift\ndef handler(x: int) -> int:\n    return x * RATE")
    kernel.run(post("drift", "/handler", {"x": 3}))
    kernel.run("RATE = 10")  # the bento would hold 10; the kernel answered with 2
    out = kernel.run("%bento build drift")
    assert "the bento was not stored: 1 of 1 sample(s) answered differently" in out
    assert "$: the kernel answered 6, the bento 30" in out and "ask them again" in out
    kernel.run(post("drift", "/handler", {"x": 3}))  # the latest answer to a request stands for it
    assert "verified: 1 sample(s) answered as the kernel did" in kernel.run("%bento build drift")
    kernel.run("%bento stop drift")
