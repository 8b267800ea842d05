"""Where a handler's model lives, and how batches get there without extra copies."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from bento_jupyter.torch_probe import loaded_torch

R = TypeVar("R")


def _referenced_objects(func: Callable[..., Any]) -> Iterator[Any]:
    """Globals named in the handler's code and its closure cells (one level, no imports)."""
    code = getattr(func, "__code__", None)
    if code is None:
        return
    namespace = getattr(func, "__globals__", {})
    for name in code.co_names:
        if name in namespace:
            yield namespace[name]
    for cell in getattr(func, "__closure__", None) or ():
        try:
            yield cell.cell_contents
        except ValueError:  # an empty cell
            continue


def model_device(func: Callable[..., Any], explicit: str | None) -> str:
    """The device a handler computes on: explicit, else the device of a torch module it uses."""
    if explicit:
        return explicit
    torch = loaded_torch()
    if torch is None:
        return "cpu"
    for obj in _referenced_objects(func):
        if isinstance(obj, torch.nn.Module):
            for tensor in obj.parameters():
                return str(tensor.device)
    return "cpu"


def default_concurrency(device: str) -> int:
    """Batches in flight: two keep a GPU busy while the next batch is assembled; one on CPU."""
    return 2 if device.startswith("cuda") else 1


def batch_mover(device: str) -> Callable[[Any], Any] | None:
    """A function moving a merged torch batch onto ``device`` (pinned, non-blocking), or None."""
    if not device.startswith("cuda"):
        return None

    def move(batch: Any) -> Any:
        if hasattr(batch, "pin_memory") and batch.device.type == "cpu":
            return batch.pin_memory().to(device, non_blocking=True)
        return batch

    return move


def with_callers_torch_threads(func: Callable[..., R]) -> Callable[..., R]:
    """``func``, running on any thread with the torch intra-op thread count set where it was wrapped.

    ``torch.set_num_threads`` only reaches OpenMP in the thread that calls it: our server and
    worker threads would otherwise compute with OpenMP's default (every core), ignoring what the
    notebook chose, and oversubscribe a core the kernel is pinned to.
    """
    torch = loaded_torch()
    if torch is None:
        return func
    count = torch.get_num_threads()
    applied = threading.local()

    def run(*args: Any, **kwargs: Any) -> R:
        if not getattr(applied, "done", False):
            torch.set_num_threads(count)
            applied.done = True
        return func(*args, **kwargs)

    return run
