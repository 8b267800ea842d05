"""The model alone: rows per second of its batched forward on the server core (``python -m bench.model_rate``).

Run by the suite in its own process, pinned like the servers, so the table can say what share of
a request's cost is the model itself and what the HTTP ceiling leaves for everything else.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import torch

from bench.model import IN_FEATURES, load_mlp

BATCH = 64
SECONDS = 2.0


def rows_per_second(weights: str, batch: int = BATCH, seconds: float = SECONDS) -> float:
    model = load_mlp(weights)
    inputs = torch.randn(batch, IN_FEATURES)
    with torch.inference_mode():
        for _ in range(20):
            model(inputs)
        calls, began = 0, time.perf_counter()
        while time.perf_counter() - began < seconds:
            model(inputs)
            calls += 1
    return calls * batch / (time.perf_counter() - began)


def measure_on_core(core: int, weights: str, env: dict[str, str]) -> float:
    """Rows/s measured in a fresh process pinned to ``core``."""
    argv = ["taskset", "-c", str(core), sys.executable, "-m", "bench.model_rate", weights]
    return json.loads(subprocess.run(argv, env=env, check=True, capture_output=True, text=True).stdout)["rows_per_s"]


if __name__ == "__main__":
    print(json.dumps({"rows_per_s": rows_per_second(sys.argv[1])}))
