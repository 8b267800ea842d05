"""Servers under test that run as their own process, pinned to the server core."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
BENTOML_VENV = REPO / ".venv-bentoml"  # made by .ci/install: BentoML 1.4 with the same torch
SERVER_CORE = 0


class Unavailable(Exception):
    """A server that cannot run on this machine; the message says why."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(url: str, timeout_s: float, alive: Callable[[], bool] = lambda: True) -> None:
    """Poll ``url`` until it answers 200; Unavailable if ``alive()`` turns false or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not alive():
            raise Unavailable("exited during startup")
        with contextlib.suppress(requests.RequestException):
            if requests.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.2)
    raise Unavailable(f"not ready within {timeout_s:g}s")


@dataclass
class ProcessServer:
    """A command serving ``/predict`` on ``port``, started under ``taskset`` on the server core."""

    label: str
    argv: list[str]
    port: int
    env: dict[str, str]
    log: Path
    batch_size: float | None = None  # a known constant (1 for one forward per request); None: scrape
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def start(self, timeout_s: float = 90.0) -> None:
        with self.log.open("wb") as log:
            self._proc = subprocess.Popen(
                ["taskset", "-c", str(SERVER_CORE), *self.argv],
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_ready(f"{self.url}/readyz", timeout_s, lambda: self._proc.poll() is None)  # type: ignore[union-attr]
        except Unavailable as exc:
            self.stop()
            raise Unavailable(f"{exc}: {self._last_log_line()}") from None

    def _last_log_line(self) -> str:
        lines = [line for line in self.log.read_text(errors="replace").splitlines() if line.strip()]
        return lines[-1].strip() if lines else f"no output (see {self.log})"

    def stop(self) -> None:
        """SIGTERM the process group this server leads; SIGKILL it if it lingers."""
        if self._proc is None or self._proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, 15)
        try:
            self._proc.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, 9)
            self._proc.wait(5)


def _uvicorn(app: str, port: int) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1", "--loop", "uvloop", "--http", "httptools", "--no-access-log",
        "--log-level", "warning", "--backlog", "2048",
    ]  # fmt: skip


def naive_server(env: dict[str, str], logs: Path) -> ProcessServer:
    port = free_port()
    argv = _uvicorn("bench.apps.naive:app", port)
    return ProcessServer("starlette, 1 forward/request", argv, port, env, logs / "naive.log", batch_size=1.0)


def noop_server(env: dict[str, str], logs: Path) -> ProcessServer:
    port = free_port()
    return ProcessServer("uvicorn no-op (ceiling)", _uvicorn("bench.apps.noop:app", port), port, env, logs / "noop.log")


def bentoml_server(service: str, label: str, env: dict[str, str], logs: Path) -> ProcessServer:
    """``bentoml serve bench.apps.bentoml_mlp:SERVICE`` from the bench's BentoML venv."""
    bentoml = BENTOML_VENV / "bin" / "bentoml"
    if not bentoml.exists():
        raise Unavailable(f"{bentoml} is missing: run bash bench/setup")
    port = free_port()
    argv = [str(bentoml), "serve", f"bench.apps.bentoml_mlp:{service}", "--host", "127.0.0.1", "--port", str(port)]
    return ProcessServer(label, argv, port, env, logs / f"{service}.log")


def standalone_server(env: dict[str, str], logs: Path, target: str) -> ProcessServer:
    """``bento-jupyter serve TARGET`` (a bento the kernel built into ``$BENTO_JUPYTER_HOME``)."""
    port = free_port()
    argv = ["bento-jupyter", "serve", target, "--port", str(port)]
    return ProcessServer("ours, bento-jupyter serve", argv, port, env, logs / "standalone.log")
