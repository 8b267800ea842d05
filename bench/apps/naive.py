"""Starlette + uvicorn, one forward per request: what a hand-written server would do."""

from __future__ import annotations

import os

import numpy as np
import orjson
import torch
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench.model import load_mlp

model = load_mlp(os.environ["BENCH_WEIGHTS"])


def forward(inputs: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model(torch.from_numpy(inputs)).numpy()


async def predict(request: Request) -> Response:
    inputs = np.asarray(orjson.loads(await request.body())["inputs"], dtype=np.float32)
    # The forward runs on the event loop: a naive server has nothing else to do meanwhile.
    return Response(orjson.dumps(forward(inputs), option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json")


async def ready(_: Request) -> Response:
    return Response(b"\n")


app = Starlette(routes=[Route("/predict", predict, methods=["POST"]), Route("/readyz", ready)])
