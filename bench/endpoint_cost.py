"""Python time per request inside our ASGI app, without HTTP or sockets.

``python -m bench.endpoint_cost [--concurrency 1,32] [--requests 2000]`` calls the service's app
directly on a uvloop loop, with in-memory receive/send, pinned to the server core. The model is a
256x10 matmul, so the figure is what batching, admission, decoding, encoding and metrics cost.
Each figure is the best of 7 repetitions, so that other load on the machine does not count.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson
import uvloop

from bench.model import IN_FEATURES
from bench.servers import SERVER_CORE
from bento_jupyter import api
from bento_jupyter.server.app import ServiceApp
from bento_jupyter.service.definition import ServiceDefinition

REPETITIONS = 7
_WEIGHTS = np.zeros((IN_FEATURES, 10), np.float32)


@api(batchable=True, max_batch_size=64, max_latency_ms=10)
def predict(inputs: np.ndarray) -> np.ndarray:
    return inputs @ _WEIGHTS


def _request(body: bytes) -> tuple[dict[str, Any], Any, Any]:
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/predict",
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(_: dict[str, Any]) -> None:
        return None

    return scope, receive, send


async def _seconds_per_request(app: ServiceApp, concurrency: int, requests: int) -> float:
    row = np.random.default_rng(0).standard_normal(IN_FEATURES).round(4).tolist()
    scope, receive, send = _request(orjson.dumps({"inputs": [row]}))

    async def rounds(count: int) -> None:
        if concurrency == 1:  # one after another in this task, as a lone client's requests arrive
            for _ in range(count):
                await app(scope, receive, send)
            return
        for _ in range(count // concurrency):
            await asyncio.gather(*(app(scope, receive, send) for _ in range(concurrency)))

    await rounds(requests // 10)  # warm up: the latency model learns, caches fill
    best = float("inf")
    for _ in range(REPETITIONS):
        began = time.perf_counter()
        await rounds(requests)
        best = min(best, time.perf_counter() - began)
    return best / requests


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.endpoint_cost", description=__doc__)
    parser.add_argument("--concurrency", default="1,32", help="requests in flight at once, comma-separated")
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args(argv)
    os.sched_setaffinity(0, {SERVER_CORE})
    app = ServiceApp(ServiceDefinition.from_functions("cost", [predict]))
    for concurrency in (int(c) for c in args.concurrency.split(",")):
        seconds = uvloop.run(_seconds_per_request(app, concurrency, args.requests))
        print(f"concurrency {concurrency:>3}: {seconds * 1e6:6.1f} us of Python per request")


if __name__ == "__main__":
    main()
