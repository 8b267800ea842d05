"""What a refusal costs the server core: 503s per second against an API that refuses everything.

``python -m bench.refusal_cost [--seconds 3] [--connections 64,256,1024] [--rounds 2]`` serves, pinned to the
server core, an API whose model is stuck on its first call with its one queue slot taken, so every
further request is refused; the C load generator (closed loop, on the client core) resends at once.
The 503s/s is how many refusals one core answers: with the fast path (``server/refusal.py``: a pre-built
503 from the connection's bytes) and without it (uvicorn's parser and the ASGI app), alternating, and from
``refusal_floor.c``, a C epoll server writing a pre-built 503 for every read: the floor any server pays
here. Each figure comes with the server's share of its core, and the 503s per core-second they imply.
When the floor's share is well below 100%, the load generator's core was the limit.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import requests

from bench.load import LOADGEN, run_load
from bench.procstat import cpu_seconds
from bench.servers import SERVER_CORE, free_port

SERVER = """
import sys, threading, time
import numpy as np
from bento_jupyter import api
from bento_jupyter.server import runner
from bento_jupyter.server.app import ServiceApp
from bento_jupyter.service.definition import ServiceDefinition
if sys.argv[2] == "asgi":
    from bento_jupyter.uvicorn_config import HeadTimeoutProtocol
    runner.RefusingProtocol = HeadTimeoutProtocol
gate = threading.Event()
@api(batchable=True, max_batch_size=8, max_latency_ms=50, max_queue_size=1)
def predict(inputs: np.ndarray) -> np.ndarray:
    gate.wait(3600)
    return inputs
app = ServiceApp(ServiceDefinition.from_functions("refusing", [predict]))
server = runner.ThreadedServer(app, "127.0.0.1", int(sys.argv[1]))
server.start()
time.sleep(3600)
"""
BODY = b'{"inputs": [[1.0, 2.0, 3.0, 4.0]]}'
FLOOR = LOADGEN.parent / "refusal_floor"
PATHS = ("floor", "fast", "asgi")


def refusals_per_s(path: str, connections: int, seconds: float, body: Path) -> tuple[float, float]:
    """503s per second from a fresh server taking the ``fast`` or ``asgi`` path, or the C ``floor``, and the
    share of its core the server used meanwhile."""
    port = free_port()
    if path == "floor":
        argv = ["taskset", "-c", str(SERVER_CORE), str(FLOOR), str(port)]
    else:
        argv = ["taskset", "-c", str(SERVER_CORE), sys.executable, "-c", SERVER, str(port), path]
    with subprocess.Popen(argv, env={**os.environ, "OMP_NUM_THREADS": "1"}) as proc:
        try:
            url = f"http://127.0.0.1:{port}"
            for _ in range(300):
                try:
                    requests.get(f"{url}/readyz", timeout=1)
                    break
                except requests.RequestException:
                    time.sleep(0.05)
            for _ in range(2 if path != "floor" else 0):  # one running, one queued: every later request is refused
                subprocess.Popen(["curl", "-s", "-o", "/dev/null", "-XPOST", f"{url}/predict", "-d", BODY.decode()])
            time.sleep(0.5)
            marks: dict[str, float] = {}

            def mark(name: str) -> None:
                marks[name + "_cpu"], marks[name] = cpu_seconds(proc.pid), time.monotonic()

            load = run_load(
                f"{url}/predict",
                body,
                connections,
                1.0,
                seconds,
                on_start=lambda: mark("start"),
                on_end=lambda: mark("end"),
            )
            share = (marks["end_cpu"] - marks["start_cpu"]) / (marks["end"] - marks["start"])
            return load.refused.count / load.seconds, share
        finally:
            proc.kill()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.refusal_cost", description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--connections", default="64,256,1024", help="comma-separated closed-loop client counts")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    body = Path(__file__).resolve().parent / ".build" / "refusal_body.json"
    body.write_bytes(BODY)
    if not FLOOR.exists():
        subprocess.run(["cc", "-O2", "-o", str(FLOOR), str(FLOOR.parent.parent / "refusal_floor.c")], check=True)
    for round_ in range(args.rounds):
        for connections in (int(c) for c in args.connections.split(",")):
            cells = []
            for path in PATHS:
                rate, share = refusals_per_s(path, connections, args.seconds, body)
                cells.append(f"{path} {rate:.0f}/s at {100 * share:.0f}% ({rate / max(share, 0.01):.0f}/core-s)")
            print(f"round {round_ + 1}, c={connections}: " + ", ".join(cells), flush=True)


if __name__ == "__main__":
    main()
