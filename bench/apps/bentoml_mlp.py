"""The MLP as BentoML 1.4 services, batched and unbatched, served by `bentoml serve` with 1 worker."""

from __future__ import annotations

import os

import bentoml
import numpy as np
import torch

from bench.model import load_mlp

MAX_BATCH_SIZE = 64
# BentoML's own 10 ms (ours) refuses nearly everything here, so the main row gets a 1 s budget.
MAX_LATENCY_MS = 1000
TIGHT_LATENCY_MS = 10
# Same footing as ours: one worker, no access log (ours logs none on the hot path).
CONFIG = {"workers": 1, "logging": {"access": {"enabled": False}}}


def forward(model: torch.nn.Module, inputs: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model(torch.from_numpy(inputs.astype(np.float32, copy=False))).numpy()


@bentoml.service(**CONFIG)
class MLPBatched:
    def __init__(self) -> None:
        self.model = load_mlp(os.environ["BENCH_WEIGHTS"])

    @bentoml.api(batchable=True, max_batch_size=MAX_BATCH_SIZE, max_latency_ms=MAX_LATENCY_MS)
    def predict(self, inputs: np.ndarray) -> np.ndarray:
        return forward(self.model, inputs)


@bentoml.service(**CONFIG)
class MLPBatched10ms:
    def __init__(self) -> None:
        self.model = load_mlp(os.environ["BENCH_WEIGHTS"])

    @bentoml.api(batchable=True, max_batch_size=MAX_BATCH_SIZE, max_latency_ms=TIGHT_LATENCY_MS)
    def predict(self, inputs: np.ndarray) -> np.ndarray:
        return forward(self.model, inputs)


@bentoml.service(**CONFIG)
class MLPUnbatched:
    def __init__(self) -> None:
        self.model = load_mlp(os.environ["BENCH_WEIGHTS"])

    @bentoml.api
    def predict(self, inputs: np.ndarray) -> np.ndarray:
        return forward(self.model, inputs)
