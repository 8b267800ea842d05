"""The built wheel carries the sidebar prebuilt: installed where no Node exists, JupyterLab lists the labextension and
jupyter_server the REST extension, both enabled and OK, from the wheel's own prefix (not the editable checkout)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
LABEXTENSION = "bento-jupyter-labextension"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def run(command: list[str | Path], **kwargs: object) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, **kwargs)  # type: ignore[call-overload]
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return ANSI.sub("", done.stdout + done.stderr)


def sections(listing: str, header: re.Pattern[str]) -> dict[str, str]:
    """A listing's blocks keyed by the directory that heads each (`jupyter ... list` prints one per path)."""
    found: dict[str, str] = {}
    current = None
    for line in listing.splitlines():
        match = header.match(line.strip())
        if match:
            current = match.group(1)
            found[current] = ""
        elif current is not None:
            found[current] += line + "\n"
    return found


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel as a user's `pip wheel .` builds it: in an isolated build environment holding exactly what
    `[build-system] requires` lists (reusing the labextension build already in the checkout, if any)."""
    out = tmp_path_factory.mktemp("wheel")
    run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "-q", "-w", out], cwd=REPO)
    (built,) = out.glob("bento_jupyter-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Path:
    """A fresh virtual environment with only our wheel installed in it; its dependencies are those of the test's
    interpreter (a `.pth` line puts that site-packages after the venv's own, without its editable-install hooks)."""
    root = tmp_path_factory.mktemp("venv") / "env"
    run([sys.executable, "-m", "venv", root])
    own_site = run([root / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).strip()
    Path(own_site, "dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    run([root / "bin" / "python", "-m", "pip", "install", "--no-deps", "-q", wheel])
    return root


def without_node(venv: Path) -> dict[str, str]:
    """The environment for the checks: the venv's and the interpreter's script folders only, and no `node` on it."""
    path = os.pathsep.join([str(venv / "bin"), sysconfig.get_path("scripts")])
    assert shutil.which("node", path=path) is None
    env = {**os.environ, "PATH": path, "JUPYTER_CONFIG_DIR": str(venv / "no-user-config")}
    env.pop("PYTHONPATH", None)  # a checkout on it would shadow the installed wheel
    return env


def test_wheel_holds_the_prebuilt_labextension_and_the_server_config(wheel: Path):
    names = zipfile.ZipFile(wheel).namelist()
    data = "bento_jupyter-0.1.0.data/data/"
    labextension = f"{data}share/jupyter/labextensions/{LABEXTENSION}/"
    assert f"{labextension}package.json" in names
    assert f"{labextension}schemas/{LABEXTENSION}/plugin.json" in names
    assert any(re.fullmatch(rf"{re.escape(labextension)}static/remoteEntry\.[0-9a-f]+\.js", n) for n in names)
    assert f"{data}etc/jupyter/jupyter_server_config.d/bento_jupyter.json" in names
    assert not any("node_modules" in n for n in names)


def test_installed_wheel_lists_both_extensions_enabled_and_ok_without_node(venv: Path):
    python = venv / "bin" / "python"
    env = without_node(venv)
    # Each check runs in the venv's interpreter (the `jupyter` launcher would exec the base interpreter's scripts),
    # outside the checkout so that its sources are not importable from the working directory.
    imported = run([python, "-c", "import bento_jupyter.labserver as m; print(m.__file__)"], env=env, cwd=venv)
    assert Path(imported.strip()).is_relative_to(venv), imported

    labextensions = run([python, "-m", "jupyterlab.labextensions", "list"], env=env, cwd=venv)
    by_dir = sections(labextensions, re.compile(r"^(/\S*labextensions)$"))
    ours = by_dir.get(str(venv / "share" / "jupyter" / "labextensions"), "")
    assert re.search(rf"^\s*{LABEXTENSION} v0\.1\.0 enabled\s+OK\s*$", ours, re.M), labextensions

    server = run([python, "-m", "jupyter_server.extension.serverextension", "list"], env=env, cwd=venv)
    by_config = sections(server, re.compile(r"^Config dir: (\S+)$"))
    ours = by_config.get(str(venv / "etc" / "jupyter"), "")
    assert re.search(r"^\s*bento_jupyter\.labserver enabled\s*$", ours, re.M), server
    assert re.search(r"^\s*bento_jupyter\.labserver\s+OK\s*$", ours, re.M), server
