"""Where the kernel's serving time goes: py-spy samples of the kernel under load, grouped by stage.

``python -m bench.profile [--connections 64] [--seconds 5]`` (needs ``pip install py-spy``) prints
a markdown table for bench/README.md. Shares are of py-spy's non-idle samples: a thread waiting for
the GIL counts as busy, so the shares say where threads are, not exactly where core 0's cycles go.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from bench.in_kernel import SERVE_CELL, SETUP_CELL, KernelService
from bench.kernel import BenchKernel
from bench.load import CLIENT_CORE, run_load
from bench.model import save_weights
from bench.run import WORKDIR, server_env, write_body
from bench.servers import free_port, wait_ready

# (substring of a frame, stage) for the server's event-loop thread, tried from the leaf frame up.
_LOOP_STAGES = (
    ("prometheus_client", "metrics (prometheus_client, live window)"),
    ("server/metrics.py", "metrics (prometheus_client, live window)"),
    ("service/codecs.py", "decode/encode values (np.asarray, tolist)"),
    ("service/definition.py", "decode/encode values (np.asarray, tolist)"),
    ("server/dispatch/", "dispatcher (queue, policy, executor hand-off)"),
    ("service/batch_values.py", "dispatcher (queue, policy, executor hand-off)"),
    ("concurrent/futures", "dispatcher (queue, policy, executor hand-off)"),
    ("server/", "endpoint glue (orjson, body read, routing)"),
    ("uvicorn/", "HTTP protocol (uvicorn + httptools)"),
    ("asyncio/", "event loop in C (uvloop: epoll, socket I/O, callbacks)"),
)
_WORKER_STAGES = (
    ("torch/", "model forward (torch, worker thread)"),
    ("batch_values.py", "batch merge/split (worker thread)"),
    ("concurrent/futures", "worker thread waiting (GIL, queue)"),
    ("threading.py", "worker thread waiting (GIL, queue)"),
)


def stage_of(thread: str, frames: Sequence[str]) -> str:
    """The stage a sampled stack (root first) belongs to, judged by its thread and innermost frames."""
    if thread.startswith("bento-server"):
        stages, fallback = _LOOP_STAGES, "event loop, other Python"
    elif thread.startswith("bento-"):
        stages, fallback = _WORKER_STAGES, "handler glue (cell code, worker thread)"
    else:
        return "kernel's other threads (ZMQ, heartbeat, panel)"
    for frame in reversed(frames):
        for needle, stage in stages:
            if needle in frame:
                return stage
    return fallback


def summarize(raw: Path) -> Counter[str]:
    """Samples per stage from py-spy's ``--format raw --threads`` output."""
    stages: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        thread, *frames = stack.split(";")
        stages[stage_of(thread.partition(": ")[2], frames)] += int(count)
    return stages


def render(stages: Counter[str], connections: int, rate: float) -> str:
    total = sum(stages.values()) or 1
    lines = [
        f"| stage (kernel serving at c={connections}, {rate:.0f} req/s) | share of samples |",
        "|---|---:|",
    ]
    lines += [f"| {stage} | {count / total:.0%} |" for stage, count in stages.most_common()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args(argv)
    spy = shutil.which("py-spy")
    if spy is None:
        sys.exit("py-spy is not installed: pip install py-spy")
    WORKDIR.mkdir(parents=True, exist_ok=True)
    weights = save_weights(WORKDIR / "mlp.pt")
    body = write_body(WORKDIR / "body.json")
    raw = Path(tempfile.mkdtemp(prefix="bento-profile-")) / "samples.txt"
    kernel = BenchKernel(server_env(WORKDIR, weights))
    try:
        kernel.start()
        kernel.execute(SETUP_CELL)
        service = KernelService(kernel.pid, free_port())
        kernel.execute(SERVE_CELL.format(port=service.port))
        wait_ready(f"{service.url}/readyz", 30)
        spy_argv = [spy, "record", "--threads", "--nonblocking", "--rate", "250", "--format", "raw"]
        spy_argv += ["-d", f"{args.seconds:g}", "-p", str(kernel.pid), "-o", str(raw)]
        recorders: list[subprocess.Popen[bytes]] = []

        def record() -> None:
            argv = ["taskset", "-c", str(CLIENT_CORE), *spy_argv]
            recorders.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

        load = run_load(f"{service.url}/predict", body, args.connections, 1.0, args.seconds + 1, on_start=record)
        recorders[0].wait(60)
    finally:
        kernel.shutdown()
    print(render(summarize(raw), args.connections, load.ok_per_s))
    return 0


if __name__ == "__main__":
    sys.exit(main())
