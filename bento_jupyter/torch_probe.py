"""Is torch here? Asked without importing it: bento_jupyter never imports torch itself, it only recognises
tensors and modules when the notebook (or the bento) has loaded torch."""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Any


def loaded_torch() -> ModuleType | None:
    """The ``torch`` module when this process has imported it, else None."""
    return sys.modules.get("torch")


def required_torch() -> ModuleType:
    """The ``torch`` module where a tensor or a module in hand proves it is loaded."""
    torch = loaded_torch()
    if torch is None:
        raise RuntimeError("torch is not loaded")
    return torch


def is_tensor(value: Any) -> bool:
    torch = loaded_torch()
    return torch is not None and isinstance(value, torch.Tensor)


def is_tensor_type(hint: Any) -> bool:
    torch = loaded_torch()
    return torch is not None and hint is torch.Tensor


def is_torch_module(value: Any) -> bool:
    """Whether ``value`` is a ``torch.nn.Module``."""
    torch = loaded_torch()
    return torch is not None and isinstance(value, torch.nn.Module)
