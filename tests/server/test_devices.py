"""Batches reach the model's device: CUDA when the model lives there, the same path on CPU."""

from __future__ import annotations

import ctypes
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import requests
import torch

from bento_jupyter import api
from bento_jupyter.server.dispatch.devices import batch_mover, default_concurrency, model_device

linear = torch.nn.Linear(3, 1)
seen_devices: list[str] = []


@api(batchable=True, max_batch_size=8, device="cpu")
def on_cpu(inputs: torch.Tensor) -> torch.Tensor:
    seen_devices.append(str(inputs.device))
    with torch.inference_mode():
        return linear(inputs)


def test_model_device_is_found_from_the_modules_a_handler_uses():
    def uses_linear(x):
        return linear(x)

    assert model_device(uses_linear, None) == "cpu"
    assert model_device(uses_linear, "cuda:1") == "cuda:1"
    assert default_concurrency("cpu") == 1 and default_concurrency("cuda:0") == 2
    assert batch_mover("cpu") is None


def test_tensor_batches_run_on_the_configured_cpu_device(serve):
    url = serve("dev", on_cpu).url
    answer = requests.post(f"{url}/on_cpu", json={"inputs": [[1.0, 2.0, 3.0]]}, timeout=5)
    assert answer.status_code == 200 and len(answer.json()) == 1
    assert seen_devices and set(seen_devices) == {"cpu"}


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_batches_are_moved_to_the_gpu_pinned_and_non_blocking():
    move = batch_mover("cuda:0")
    moved = move(torch.ones(4, 3))
    assert moved.device.type == "cuda"
    model = torch.nn.Linear(3, 1).cuda()

    def handler(x: torch.Tensor) -> torch.Tensor:
        return model(x)

    assert model_device(handler, None).startswith("cuda")


def _openmp_threads() -> int | None:
    """OpenMP's thread count for the calling thread, from the libgomp torch loaded (None if not found).

    Other libraries bring their own libgomp (scikit-learn's, once an earlier test imported it), each with
    its own settings: only torch's tells what torch.set_num_threads did."""
    package = Path(torch.__file__).parent
    with open("/proc/self/maps") as maps:
        libraries = {Path(line.split()[-1]) for line in maps if "libgomp" in line}
    ours = sorted(lib for lib in libraries if lib.parent in (package / "lib", package.parent / "torch.libs"))
    return ctypes.CDLL(str(ours[0])).omp_get_max_threads() if ours else None


openmp_seen: list[int | None] = []


@api(batchable=True, max_batch_size=8, max_latency_ms=1)
def threads_probe(inputs: np.ndarray) -> np.ndarray:
    openmp_seen.append(_openmp_threads())
    return inputs


def test_handlers_compute_with_the_torch_thread_count_the_notebook_set(serve):
    if _openmp_threads() is None or (os.cpu_count() or 1) < 2:
        pytest.skip("needs torch's libgomp and two cores to tell the settings apart")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        url = serve("threads", threads_probe).url
        rows = [{"inputs": [[float(i)]]} for i in range(8)]
        with ThreadPoolExecutor(8) as pool:  # lone requests run on the server's thread, batches on a worker
            list(pool.map(lambda body: requests.post(f"{url}/threads_probe", json=body, timeout=5), rows))
    finally:
        torch.set_num_threads(before)
    assert openmp_seen and set(openmp_seen) == {1}
