"""A result's value does not depend on its return hint: a float16 or float32 number is written in the shortest form
that reads back as the same value of its own dtype, and a 0-d array or tensor is the scalar it holds (v2 shape [])."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import requests
import torch
import tritonclient.http as triton
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

GENERATED = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def narrow_float(x: float, dtype: str) -> float:
    return np.dtype(dtype).type(x)


def narrow_list(x: float, dtype: str) -> list[float]:
    return np.array([x], dtype=dtype)


def narrow_dict(x: float, dtype: str) -> dict[str, float]:
    return {"v": np.dtype(dtype).type(x)}


def narrow_array(x: float, dtype: str) -> np.ndarray:
    return np.array([x], dtype=dtype)


def narrow_tensor(x: float, dtype: str) -> torch.Tensor:
    return torch.tensor([x], dtype=getattr(torch, dtype))


def narrow_tensor_in_dict(x: float, dtype: str) -> dict:
    return {"v": torch.tensor([[x]], dtype=getattr(torch, dtype))}


def narrow_any(x: float, dtype: str):
    return {"v": [np.array([x], dtype=dtype), np.dtype(dtype).type(x)]}


def zero_d_array(x: Any, dtype: str) -> np.ndarray:
    return np.array(x, dtype=dtype)


def zero_d_tensor(x: Any, dtype: str) -> torch.Tensor:
    return torch.tensor(x, dtype=getattr(torch, dtype))


def zero_d_unhinted(x: Any, dtype: str):
    return np.array(x, dtype=dtype)


def zero_d_in_dict(x: Any, dtype: str) -> dict[str, Any]:
    return {"v": torch.tensor(x, dtype=getattr(torch, dtype))}


def scalar_under_array_hint(x: Any, dtype: str) -> np.ndarray:
    return np.dtype(dtype).type(x)


NARROW = [narrow_float, narrow_list, narrow_dict, narrow_array, narrow_tensor, narrow_tensor_in_dict, narrow_any]
ZERO_D = [zero_d_array, zero_d_tensor, zero_d_unhinted, zero_d_in_dict, scalar_under_array_hint]


@pytest.fixture
def url(serve) -> str:
    return serve("values", *NARROW, *ZERO_D).url


def post(url: str, route: str, x: float, dtype: str) -> Any:
    answer = requests.post(f"{url}/{route}", data=json.dumps({"x": x, "dtype": dtype}), timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def numbers(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [n for item in value.values() for n in numbers(item)]
    if isinstance(value, list):
        return [n for item in value for n in numbers(item)]
    return [value]


finite = {"float16": st.floats(width=16, allow_nan=False, allow_infinity=False),
          "float32": st.floats(width=32, allow_nan=False, allow_infinity=False)}  # fmt: skip


@given(dtype_and_x=st.sampled_from(sorted(finite)).flatmap(lambda d: st.tuples(st.just(d), finite[d])))
@GENERATED
def test_float16_and_float32_results_are_their_shortest_own_dtype_form_under_every_hint(url, dtype_and_x):
    dtype, x = dtype_and_x
    shortest = float(str(np.dtype(dtype).type(x)))  # numpy's str is the shortest decimal of that dtype
    for func in NARROW:
        got = numbers(post(url, func.__name__, x, dtype))
        assert got and all(n == shortest for n in got), (func.__name__, got, shortest)


scalars = {
    "float16": st.floats(width=16, allow_nan=False, allow_infinity=False),
    "float32": st.floats(width=32, allow_nan=False, allow_infinity=False),
    "float64": st.floats(allow_nan=False, allow_infinity=False),
    "int64": st.integers(-(2**63), 2**63 - 1),
    "int8": st.integers(-128, 127),
    "bool": st.booleans(),
}


@given(dtype_and_x=st.sampled_from(sorted(scalars)).flatmap(lambda d: st.tuples(st.just(d), scalars[d])))
@GENERATED
def test_a_0d_result_is_its_scalar_under_every_hint(url, dtype_and_x):
    dtype, x = dtype_and_x
    scalar = np.array(x, dtype=dtype)[()]
    expected = float(str(scalar)) if dtype.startswith("float") else scalar.item()
    for func in ZERO_D:
        got = post(url, func.__name__, x, dtype)
        assert numbers(got) == [expected] and type(numbers(got)[0]) is type(expected), (func.__name__, got)


@pytest.mark.parametrize("route", ["zero_d_array", "zero_d_tensor", "zero_d_unhinted"])
def test_a_0d_result_is_a_v2_tensor_of_shape_empty(url, route):
    with triton.InferenceServerClient(url=url.removeprefix("http://")) as client:
        inputs = [triton.InferInput("x", [1], "FP64"), triton.InferInput("dtype", [1], "BYTES")]
        inputs[0].set_data_from_numpy(np.array([7.0]))
        inputs[1].set_data_from_numpy(np.array([b"float32"], dtype=object))
        output = client.infer(route, inputs).get_response()["outputs"][0]
    assert output["shape"] == []
    assert output["datatype"] == ("FP64" if route == "zero_d_unhinted" else "FP32")  # unhinted: a Python float


@given(x=finite["float16"])
@GENERATED
def test_a_v2_json_float16_output_is_in_float16s_shortest_form(url, x):
    with triton.InferenceServerClient(url=url.removeprefix("http://")) as client:
        inputs = [triton.InferInput("x", [1], "FP64"), triton.InferInput("dtype", [1], "BYTES")]
        inputs[0].set_data_from_numpy(np.array([x]))
        inputs[1].set_data_from_numpy(np.array([b"float16"], dtype=object))
        wanted = [triton.InferRequestedOutput("output", binary_data=False)]
        output = client.infer("narrow_tensor", inputs, outputs=wanted).get_output("output")
    assert output["datatype"] == "FP16" and output["data"] == [float(str(np.float16(x)))], output


def zero_d_items(n: int) -> Iterator[np.ndarray]:
    for i in range(n):
        yield np.array(i / 4, dtype=np.float32)


def test_a_0d_array_is_a_valid_stream_item_written_as_its_scalar(serve):
    url = serve("items", zero_d_items).url
    answer = requests.post(f"{url}/zero_d_items", json={"n": 3}, headers={"accept": "application/json"}, timeout=10)
    assert answer.status_code == 200 and answer.json() == [0.0, 0.25, 0.5], answer.text
