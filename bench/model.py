"""The benchmark model: an MLP 256→1024→1024→10 in float32, loaded by every server from one file.

Only torch is imported here: the BentoML venv and our kernel both load it.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

IN_FEATURES = 256
HIDDEN = 1024
OUT_FEATURES = 10


def build_mlp() -> nn.Sequential:
    """The architecture, with fresh weights."""
    return nn.Sequential(
        nn.Linear(IN_FEATURES, HIDDEN),
        nn.ReLU(),
        nn.Linear(HIDDEN, HIDDEN),
        nn.ReLU(),
        nn.Linear(HIDDEN, OUT_FEATURES),
    )


def save_weights(path: Path, seed: int = 0) -> Path:
    """Write one seeded state_dict that every server loads."""
    torch.manual_seed(seed)
    torch.save(build_mlp().state_dict(), path)
    return path


def load_mlp(path: str | Path) -> nn.Sequential:
    """The MLP with the saved weights, in eval mode, on one intra-op thread (one core per server)."""
    torch.set_num_threads(1)
    model = build_mlp()
    model.load_state_dict(torch.load(path, weights_only=True))
    return model.eval()
