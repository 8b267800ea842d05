"""A real Jupyter server (``jupyter server`` or ``jupyter lab``) on 127.0.0.1 for tests, with its own root
directory, token, runtime directory and ``$BENTO_JUPYTER_HOME``; kernels it starts are reachable with
jupyter_client through their connection files. Reused by the sidebar's browser tests (tests/labextension)."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from jupyter_client.blocking import BlockingKernelClient

from tests.registry.conftest import free_port

REPO = Path(__file__).resolve().parents[2]
API = "bento-jupyter/api"


@dataclass
class JupyterServer:
    """``python -m jupyter_server`` (``app="server"``) or ``python -m jupyterlab`` (``app="lab"``) under ``base``.

    ``base/root`` is the Jupyter root (put notebooks there), ``base/home`` the bento store. The package under
    test is the checkout: its directory leads ``PYTHONPATH`` for the server and every kernel it starts.
    """

    base: Path
    app: str = "server"
    env: dict[str, str] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)
    token: str = field(default_factory=lambda: secrets.token_hex(24))
    port: int = 0
    process: subprocess.Popen | None = None

    @property
    def root(self) -> Path:
        return self.base / "root"

    @property
    def home(self) -> Path:
        return self.base / "home"

    @property
    def runtime_dir(self) -> Path:
        return self.base / "runtime"

    @property
    def log_path(self) -> Path:
        return self.base / f"jupyter-{self.app}.log"

    @property
    def url(self) -> str:
        """The server's base URL, ending in ``/``."""
        return f"http://127.0.0.1:{self.port}/"

    def process_env(self) -> dict[str, str]:
        path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
        return {
            **os.environ,
            "PYTHONPATH": path,
            "BENTO_JUPYTER_HOME": str(self.home),
            "JUPYTER_RUNTIME_DIR": str(self.runtime_dir),
            "JUPYTERLAB_SETTINGS_DIR": str(self.base / "lab-settings"),
            "JUPYTERLAB_WORKSPACES_DIR": str(self.base / "lab-workspaces"),
            **self.env,
        }

    def start(self, timeout: float = 90) -> JupyterServer:
        for directory in (self.root, self.home, self.runtime_dir):
            directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        module = {"server": "jupyter_server", "lab": "jupyterlab"}[self.app]
        command = [
            sys.executable,
            "-m",
            module,
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--ServerApp.root_dir={self.root}",
            f"--IdentityProvider.token={self.token}",
            "--ServerApp.allow_root=True",
            *self.args,
        ]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=self.process_env(), cwd=self.base
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"jupyter {self.app} exited with {self.process.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(requests.RequestException):
                if self.api("GET", "api/status", timeout=2).ok:
                    break
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"jupyter {self.app} did not answer within {timeout}s:\n{self.log_tail()}")
            time.sleep(0.2)
        if self.api("GET", f"{API}/local/bentos").status_code == 404:
            self.stop()
            raise RuntimeError(
                "the bento_jupyter.labserver extension is not enabled: "
                "jupyter server extension enable --sys-prefix bento_jupyter.labserver (.ci/install does it)"
            )
        return self

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def stop(self, timeout: float = 30) -> None:
        """Stop the server by its PID (it shuts its kernels down first), killing it if it hangs."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}

    @property
    def settings_dir(self) -> Path:
        return Path(self.process_env()["JUPYTERLAB_SETTINGS_DIR"])

    def write_settings(self, package: str, plugin: str, values: dict[str, Any]) -> None:
        """User settings as the settings editor saves them."""
        folder = self.settings_dir / package
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{plugin}.jupyterlab-settings").write_text(json.dumps(values))

    def set_registry(self, url: str, token: str = "") -> None:
        """The Bento settings' registry (``""``: the local store), which the server extension reads."""
        self.write_settings("bento-jupyter-labextension", "plugin", {"registryUrl": url, "registryToken": token})

    def api(self, method: str, path: str, auth: bool = True, **kwargs: Any) -> requests.Response:
        """``method`` on ``{url}{path}``, with the token unless ``auth`` is False."""
        headers = {**(self.headers() if auth else {}), **kwargs.pop("headers", {})}
        kwargs.setdefault("timeout", 60)
        return requests.request(method, self.url + path, headers=headers, **kwargs)

    def start_session(self, path: str, kernel_name: str = "python3") -> str:
        """Open ``path`` the way JupyterLab does (``POST /api/sessions``); return its kernel id."""
        body = {"path": path, "name": Path(path).name, "type": "notebook", "kernel": {"name": kernel_name}}
        answer = self.api("POST", "api/sessions", json=body)
        answer.raise_for_status()
        return answer.json()["kernel"]["id"]

    @contextlib.contextmanager
    def kernel_client(self, kernel_id: str, timeout: float = 60) -> Iterator[BlockingKernelClient]:
        """A jupyter_client connection to a kernel this server started."""
        client = BlockingKernelClient(connection_file=str(self.runtime_dir / f"kernel-{kernel_id}.json"))
        client.load_connection_file()
        client.start_channels()
        try:
            client.wait_for_ready(timeout)
            yield client
        finally:
            client.stop_channels()


@contextlib.contextmanager
def jupyter_server(base: Path, app: str = "server", **options: Any) -> Iterator[JupyterServer]:
    """A started server, stopped (by PID) when the block ends."""
    server = JupyterServer(base, app, **options).start()
    try:
        yield server
    finally:
        server.stop()
