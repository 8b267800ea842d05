"""bfloat16 end to end: results under any hint or batched answer their numbers, ``DType("bfloat16")`` serves, and
v2's BF16 reaches a torch handler as torch.bfloat16 and a numpy one as float32 holding the same values."""

from __future__ import annotations

from typing import Annotated

import numpy as np
import pytest
import requests
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bento_jupyter import DType, Shape, api

SEEN: list[tuple[str, list[float]]] = []
BF16 = st.lists(
    st.floats(width=32, allow_nan=False, allow_infinity=False).filter(lambda v: abs(v) < 3e38), min_size=1, max_size=6
)


def _bf16(values: list[float]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32).to(torch.bfloat16)


def hinted_torch(x: list[float]) -> torch.Tensor:
    return _bf16(x)


def hinted_numpy(x: list[float]) -> np.ndarray:
    return _bf16(x)


def unhinted(x: list[float]):
    return {"t": _bf16(x)}


@api(batchable=True, max_batch_size=8)
def batched(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.bfloat16)


def declared_torch(x: Annotated[torch.Tensor, DType("bfloat16")]) -> Annotated[torch.Tensor, DType("bfloat16")]:
    SEEN.append((str(x.dtype), x.float().tolist()))
    return x


def declared_numpy(x: Annotated[np.ndarray, DType("bfloat16")]) -> np.ndarray:
    SEEN.append((str(x.dtype), x.tolist()))
    return x


def shaped(x: Annotated[torch.Tensor, Shape((-1,)), DType("bfloat16")]) -> torch.Tensor:
    return x


def plain_torch(x: torch.Tensor) -> torch.Tensor:
    SEEN.append((str(x.dtype), x.float().tolist()))
    return x


@pytest.fixture(scope="module")
def url():
    from bento_jupyter.server.app import ServiceApp
    from bento_jupyter.server.runner import ThreadedServer
    from bento_jupyter.service.definition import ServiceDefinition

    funcs = (hinted_torch, hinted_numpy, unhinted, batched, declared_torch, declared_numpy, shaped, plain_torch)
    server = ThreadedServer(ServiceApp(ServiceDefinition.from_functions("bf16", funcs)), "127.0.0.1", None)
    server.start()
    yield server.url
    server.stop()


def rounded(values: list[float]) -> list[float]:
    return _bf16(values).float().tolist()


def same_float32(got: list[float], want: list[float]) -> bool:
    """Equal as float32 (a float32 array answers each number's shortest float32 form)."""
    return np.array_equal(np.float32(got), np.float32(want))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=BF16, route=st.sampled_from(["hinted_torch", "hinted_numpy", "unhinted", "batched"]))
def test_a_bfloat16_result_answers_its_numbers(url, values, route):
    answer = requests.post(f"{url}/{route}", json={"x": values}, timeout=10)
    assert answer.status_code == 200, answer.text
    assert same_float32(answer.json()["t"] if route == "unhinted" else answer.json(), rounded(values))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=BF16, route=st.sampled_from(["declared_torch", "declared_numpy"]))
def test_a_declared_bfloat16_parameter_gets_bfloat16_values(url, values, route):
    SEEN.clear()
    answer = requests.post(f"{url}/{route}", json={"x": values}, timeout=10)
    assert answer.status_code == 200, answer.text
    dtype = "torch.bfloat16" if route == "declared_torch" else "float32"
    assert [(dtype, rounded(values))] == SEEN
    assert same_float32(answer.json(), rounded(values))


@pytest.mark.parametrize("beyond", [3.4e38, -3.39e38, 1e39])
def test_a_value_beyond_bfloat16_is_refused_naming_the_field(url, beyond):
    answer = requests.post(f"{url}/declared_torch", json={"x": [beyond]}, timeout=10)
    assert answer.status_code == 400 and answer.json()["field"] == "x"
    assert requests.post(f"{url}/declared_torch", json={"x": [3.3895313892515355e38]}, timeout=10).ok  # the max


@pytest.mark.parametrize(
    ("model", "dtype", "datatype"),
    [
        ("declared_torch", "torch.bfloat16", "BF16"),
        ("declared_numpy", "float32", "FP32"),
        ("plain_torch", "torch.bfloat16", "FP32"),
    ],
)
def test_v2_bf16_json_input(url, model, dtype, datatype):
    SEEN.clear()
    body = {"inputs": [{"name": "x", "datatype": "BF16", "shape": [2], "data": [1.5, 0.1]}]}
    answer = requests.post(f"{url}/v2/models/{model}/infer", json=body, timeout=10)
    assert answer.status_code == 200, answer.text
    assert [(dtype, rounded([1.5, 0.1]))] == SEEN
    (output,) = answer.json()["outputs"]
    assert output["datatype"] == datatype and same_float32(output["data"], rounded([1.5, 0.1]))


def test_documents_give_bfloat16_and_its_range(url):
    routes = {r["name"]: r for r in requests.get(f"{url}/schema.json", timeout=10).json()["routes"]}
    assert routes["shaped"]["input"]["properties"]["x"]["dtype"] == "bfloat16"
    doc = requests.get(f"{url}/docs.json", timeout=10).json()
    x = doc["paths"]["/shaped"]["post"]["requestBody"]["content"]["application/json"]["schema"]["properties"]["x"]
    assert x["items"] == {"type": "number", "minimum": -3.3895313892515355e38, "maximum": 3.3895313892515355e38}


def test_v2_metadata_declares_bf16(url):
    metadata = requests.get(f"{url}/v2/models/declared_torch", timeout=10).json()
    assert metadata["inputs"][0]["datatype"] == "BF16"
    assert metadata["outputs"][0]["datatype"] == "BF16"
