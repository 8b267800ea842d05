"""A real IPython kernel, pinned to the server core, driven through jupyter_client."""

from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

from bench.servers import REPO, SERVER_CORE

_SPEC_NAME = "bento-bench-pinned"


class CellError(Exception):
    """A cell raised; the message is the kernel's ``ename: evalue``."""


class BenchKernel:
    """Starts a kernel under ``taskset``, runs cells, and times trivial round trips."""

    def __init__(self, env: dict[str, str]) -> None:
        self._specs = Path(tempfile.mkdtemp(prefix="bento-bench-kernels-"))
        spec_dir = self._specs / _SPEC_NAME
        spec_dir.mkdir()
        argv = ["taskset", "-c", str(SERVER_CORE), sys.executable, "-m", "ipykernel_launcher"]
        spec = {"argv": [*argv, "-f", "{connection_file}"], "display_name": "bench", "language": "python"}
        (spec_dir / "kernel.json").write_text(json.dumps(spec))
        self._manager = KernelManager(
            kernel_name=_SPEC_NAME, kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(self._specs)])
        )
        self._env = env
        self._client: Any = None
        self.pid = 0

    def start(self, timeout_s: float = 60.0) -> None:
        self._manager.start_kernel(env=self._env, cwd=str(REPO))
        self._client = self._manager.client()
        self._client.start_channels()
        self._client.wait_for_ready(timeout=timeout_s)
        self.pid = int(self.execute("import os; print(os.getpid())").strip())

    def execute(self, code: str, timeout_s: float = 120.0) -> str:
        """Run ``code`` as a cell; its printed text, or CellError if it raised."""
        printed: list[str] = []

        def collect(msg: dict[str, Any]) -> None:
            if msg["msg_type"] == "stream":
                printed.append(msg["content"]["text"])

        reply = self._client.execute_interactive(code, timeout=timeout_s, output_hook=collect)
        content = reply["content"]
        if content["status"] != "ok":
            raise CellError(f"{content.get('ename')}: {content.get('evalue')}")
        return "".join(printed)

    def roundtrip_s(self, code: str = "1+1") -> float:
        """Seconds from sending ``code`` to the kernel going idle with its reply."""
        began = time.perf_counter()
        self._client.execute_interactive(code, timeout=60, output_hook=lambda _: None, store_history=False)
        return time.perf_counter() - began

    def shutdown(self) -> None:
        if self._client is not None:
            self._client.stop_channels()
        if self._manager.has_kernel:
            self._manager.shutdown_kernel(now=False)


class RoundtripProbe:
    """Times ``1+1`` in the kernel over and over on a thread, between ``start()`` and ``stop()``."""

    def __init__(self, kernel: BenchKernel, pause_s: float = 0.05) -> None:
        self._kernel = kernel
        self._pause_s = pause_s
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rtt-probe", daemon=True)
        self.samples_s: list[float] = []

    def _run(self) -> None:
        while not self._stopped.is_set():
            self.samples_s.append(self._kernel.roundtrip_s())
            self._stopped.wait(self._pause_s)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(90)
