"""Every command README.md shows runs as written, in README's order, from a clean copy of the repository.

The ```python blocks run in one real kernel that first executed notebooks/quickstart.ipynb up to its first
`%%bento serve` cell (the notebook the main job opens: it trains `model` on `features` and imports `np` and
`torch`, which README's cells use). The ```bash blocks run
with `bash -c` in the copy's root, one line at a time, with a throwaway `$BENTO_JUPYTER_HOME`. A command
that serves (JupyterLab, `bento-jupyter serve`, the bundle's entrypoint, the registry) is started, probed
with real requests and stopped; one written with a trailing `&` keeps running for the commands after it.

Two lines are not re-run here, and the test checks they are the ones `.ci/run` runs: the `bash .ci/install`
prefix of the set-up commands (it would point this environment's editable install at the copy; `.ci/run`
runs it on a brand-new environment), and the test command itself (it is what runs this test).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pytest
import requests

from bento_jupyter.export.notebook_runner import CellIdNotebookClient
from tests.integration.readme_blocks import README, Block, code_blocks, setup_command

pytestmark = pytest.mark.integration
REPO = README.parent
INSTALL_PREFIX = "bash .ci/install && "
# Environments .ci/install made beside the checkout (BentoML's, Ray's): the copy uses them rather than rebuild.
ENVIRONMENTS = (".venv-bentoml", ".venv-ray")
STARTUP_S = 120
COMMAND_TIMEOUT_S = 600


def clean_copy(root: Path) -> Path:
    """The repository's files as git knows them (tracked, or new and not ignored), nothing built or installed."""
    listed = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / name)
    for name in ENVIRONMENTS:
        if (REPO / name).is_dir():
            (root / name).symlink_to(REPO / name)
    return root


def in_foreground(command: str) -> tuple[str, bool]:
    """``command`` without a trailing `&` (before any comment), and whether it had one."""
    background = re.match(r"^(.*?)\s*&\s*(#.*)?$", command)
    return (background.group(1), True) if background else (command, False)


def port_of(command: str, default: int) -> int:
    """The port a serving command binds: its last `--port N`, else a leading `PORT=N`, else ``default``."""
    ports = re.findall(r"--port[ =](\d+)", command) or re.findall(r"^PORT=(\d+)", command)
    return int(ports[-1]) if ports else default


def assert_free(port: int) -> int:
    """``port``, once checked that no other program listens there (its answers would be taken for ours)."""
    with socket.socket() as probe:
        taken = probe.connect_ex(("127.0.0.1", port)) == 0
    assert not taken, f"port {port}, which README's command uses, is taken by another program"
    return port


def wait_for(probe: Callable[[], bool], process: subprocess.Popen, log: Path, what: str) -> None:
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        assert process.poll() is None, f"{what} exited {process.returncode}:\n{log.read_text()[-3000:]}"
        with contextlib.suppress(requests.RequestException):
            if probe():
                return
        time.sleep(0.3)
    raise AssertionError(f"{what} not ready after {STARTUP_S}s:\n{log.read_text()[-3000:]}")


@dataclass
class Readme:
    """README's commands run against a copy of the repository, a home and one live kernel."""

    root: Path
    env: dict[str, str]
    kernel: CellIdNotebookClient
    background: list[subprocess.Popen] = field(default_factory=list)
    ran: list[str] = field(default_factory=list)

    def python(self, block: Block) -> None:
        self._execute(block.source)
        self.ran.append(block.source)

    def _execute(self, source: str) -> str:
        """Run ``source`` as a new cell of the kernel; return what it printed (raises CellExecutionError)."""
        cell = nbformat.v4.new_code_cell(source)
        self.kernel.nb.cells.append(cell)
        self.kernel.execute_cell(cell, len(self.kernel.nb.cells) - 1)
        return "".join(output.get("text", "") for output in cell.outputs)

    @functools.cached_property
    def reference(self) -> dict:
        """Rows of the quickstart's data and the kernel's own answers to them from README's `predict`."""
        printed = self._execute(
            "import json\n"
            "print(json.dumps({'inputs': features[:5].tolist(), 'predict': predict(features[:5]).tolist()}))"
        )
        return json.loads(printed.strip().splitlines()[-1])

    def bash(self, command: str) -> None:
        if command == setup_command("Run the whole test suite"):
            return  # the command running this test
        if command.startswith(INSTALL_PREFIX):
            assert command in (setup_command("Run the main job"), setup_command("Run the whole test suite"))
            command = command.removeprefix(INSTALL_PREFIX)
        probe = self._server_probe(command)
        if probe is None:
            done = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", command],
                cwd=self.root,
                env=self.env,
                capture_output=True,
                text=True,
                timeout=COMMAND_TIMEOUT_S,
            )
            failed = f"README command failed ({done.returncode}): {command}\n{done.stdout}\n{done.stderr}"
            assert done.returncode == 0, failed
            self._check_output(command, done.stdout)
        else:
            self._serve(command, probe)
        self.ran.append(command)

    def _server_probe(self, command: str) -> Callable[[subprocess.Popen, Path], None] | None:
        words = shlex.split(in_foreground(command)[0], comments=True)
        words = [w for w in words if not re.fullmatch(r"[A-Z_]+=\S*", w)]
        if words[:2] == ["jupyter", "lab"]:
            return self._probe_lab
        if words[:2] == ["bento-jupyter", "serve"] or (words[:1] == ["sh"] and words[1].endswith("entrypoint.sh")):
            port = assert_free(port_of(command, 3000))
            return lambda process, log: self._probe_bento(port, process, log)
        if words[:3] == ["bento-jupyter", "registry", "serve"]:
            port = assert_free(port_of(command, 8787))
            return lambda process, log: self._probe_registry(port, process, log)
        return None

    def _serve(self, command: str, probe: Callable[[subprocess.Popen, Path], None]) -> None:
        log = self.root / f".server-{len(self.ran)}.log"
        with log.open("w") as out:
            process = subprocess.Popen(
                ["bash", "-c", in_foreground(command)[0]],
                cwd=self.root,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            probe(process, log)
        except BaseException:
            stop(process)
            raise
        if in_foreground(command)[1]:
            self.background.append(process)
        else:
            stop(process)

    def _probe_lab(self, process: subprocess.Popen, log: Path) -> None:
        found: list[tuple[str, str]] = []

        def started() -> bool:
            found[:] = re.findall(r"(http://127\.0\.0\.1:\d+/)lab\?token=(\w+)", log.read_text())
            return bool(found)

        wait_for(started, process, log, "jupyter lab")
        base, token = found[0]
        headers = {"Authorization": f"token {token}"}
        # Given a file, JupyterLab serves its folder and opens it: the notebook is at the root of the contents.
        opened = requests.get(f"{base}api/contents/quickstart.ipynb", headers=headers, timeout=30)
        assert opened.status_code == 200 and opened.json()["type"] == "notebook", opened.text[:300]
        extensions = requests.get(f"{base}lab/api/extensions", headers=headers, timeout=30).json()
        assert any(e["name"] == "bento-jupyter-labextension" and e["enabled"] for e in extensions), extensions

    def _probe_bento(self, port: int, process: subprocess.Popen, log: Path) -> None:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: requests.get(f"{url}/readyz", timeout=5).ok, process, log, f"bento server on {port}")
        try:
            answer = requests.post(f"{url}/predict", json={"inputs": self.reference["inputs"]}, timeout=30)
        except requests.RequestException as exc:
            raise AssertionError(f"{exc}\n{log.read_text()[-3000:]}") from None
        assert answer.status_code == 200 and answer.json() == self.reference["predict"], answer.text[:300]

    def _probe_registry(self, port: int, process: subprocess.Popen, log: Path) -> None:
        url = f"http://127.0.0.1:{port}/api/v1/openapi.json"
        wait_for(lambda: requests.get(url, timeout=5).ok, process, log, f"registry on {port}")

    def _check_output(self, command: str, stdout: str) -> None:
        if command.startswith("curl "):
            answer = json.loads(stdout)
            assert isinstance(answer, list) and all(isinstance(label, int) for label in answer), stdout

    def close(self) -> None:
        for process in self.background:
            stop(process)


def stop(process: subprocess.Popen) -> None:
    """Stop a command started here, with everything it started (its own process group)."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=20)


@pytest.fixture(scope="module")
def readme(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Readme]:
    root = clean_copy(tmp_path_factory.mktemp("checkout"))
    home = tmp_path_factory.mktemp("home")
    env = {**os.environ, "BENTO_JUPYTER_HOME": str(home), "JUPYTER_PLATFORM_DIRS": "1"}
    for variable in ("BENTO_JUPYTER_REGISTRY_URL", "BENTO_JUPYTER_REGISTRY_TOKEN"):
        env.pop(variable, None)
    notebook = root / "notebooks" / "quickstart.ipynb"
    nb = nbformat.read(notebook, as_version=4)
    kernel = CellIdNotebookClient(
        nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(notebook.parent)}}
    )
    with kernel.setup_kernel(env=env):
        for index, cell in enumerate(list(nb.cells)):
            if cell.source.startswith("%%bento serve"):
                break
            if cell.cell_type == "code":
                kernel.execute_cell(cell, index)
        readme = Readme(root, env, kernel)
        try:
            yield readme
        finally:
            readme.close()


def test_every_readme_command_runs_as_written_in_order(readme: Readme):
    blocks = [b for b in code_blocks(README.read_text()) if b.language in ("bash", "python")]
    for block in blocks:
        if block.language == "python":
            readme.python(block)
        else:
            for command in block.commands():
                readme.bash(command)
    assert len(readme.ran) >= 20, readme.ran  # README lost its commands: this test would prove nothing


def test_ci_runs_readme_test_command_on_a_brand_new_environment():
    script = (REPO / ".ci" / "run").read_text()
    assert "readme_blocks.py" in script and '"Run the whole test suite"' in script
    assert "python3 -m venv --clear .venv" in script and ". .venv/bin/activate" in script
    assert setup_command("Run the whole test suite").startswith(INSTALL_PREFIX)
