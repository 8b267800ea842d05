"""Echo handlers for the Open Inference v2 tests: each records the (dtype, shape) it received in ``SEEN``."""

from __future__ import annotations

import numpy as np
import torch

SEEN: list[tuple[str, tuple[int, ...]]] = []  # (dtype, shape) each handler received; tests clear it first


def seen(x) -> None:
    SEEN.append((str(x.dtype).removeprefix("torch."), tuple(x.shape)))


def single(x: np.ndarray) -> np.ndarray:
    seen(x)
    return x


def single_torch(x: torch.Tensor) -> torch.Tensor:
    seen(x)
    return x
