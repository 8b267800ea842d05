"""A result's declared Shape and DType hold as v2 metadata states them, on every route: a result of another dtype is
cast to the declared one when every value fits it, and a contradicting shape or a value the dtype cannot hold is a
500 naming the API, what the hint declares and what came back (README: Types)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Annotated, Any

import numpy as np
import pytest
import requests
import torch
import tritonclient.http as triton
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from tritonclient.utils import InferenceServerException

from bento_jupyter import DType, Shape, api
from tests.server.test_tasks import wait_for

GENERATED = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
PRODUCED = ["int8", "uint8", "int16", "int32", "int64", "float16", "float32", "float64"]


def made(spec: str) -> np.ndarray:
    """The array a JSON ``spec`` describes: its values, shape and dtype."""
    wanted = json.loads(spec)
    return np.array(wanted["values"], dtype=wanted["dtype"]).reshape(wanted["shape"])


def rows_f32(spec: str) -> Annotated[np.ndarray, Shape((-1, 2)), DType("float32")]:
    return made(spec)


def any_i8(spec: str) -> Annotated[np.ndarray, DType("int8")]:
    return made(spec)


def torch_u8(spec: str) -> Annotated[torch.Tensor, DType("uint8")]:
    return torch.from_numpy(made(spec))


@api(task=True)
def task_f32(spec: str) -> Annotated[np.ndarray, Shape((-1, 2)), DType("float32")]:
    return made(spec)


def items_i8(spec: str) -> Iterator[Annotated[np.ndarray, DType("int8")]]:
    yield np.array([1, 2], dtype=np.int64)
    yield made(spec)


DECLARED = {rows_f32: ("float32", (-1, 2)), any_i8: ("int8", None), torch_u8: ("uint8", None)}
V2_NAMES = {"float32": "FP32", "int8": "INT8", "uint8": "UINT8"}


@pytest.fixture
def url(serve) -> str:
    return serve("results", rows_f32, any_i8, torch_u8, task_f32, items_i8).url


def spec_of(array: np.ndarray) -> str:
    return json.dumps({"values": array.ravel().tolist(), "shape": list(array.shape), "dtype": str(array.dtype)})


def fits(array: np.ndarray, dtype: str, shape: tuple[int, ...] | None) -> bool:
    if shape is not None and (
        array.ndim != len(shape) or any(d not in (-1, n) for d, n in zip(shape, array.shape, strict=True))
    ):
        return False
    target = np.dtype(dtype)
    if target.kind == "f":
        return bool(np.all(np.abs(array.astype(np.float64)) <= np.finfo(target).max))
    info = np.iinfo(target)
    whole = np.all(np.mod(array, 1) == 0) if array.dtype.kind == "f" else True
    return bool(whole and np.all(array >= info.min) and np.all(array <= info.max))


def v2_json(url: str, name: str, spec: str) -> requests.Response:
    body = {"inputs": [{"name": "spec", "shape": [1], "datatype": "BYTES", "data": [spec]}]}
    return requests.post(f"{url}/v2/models/{name}/infer", json=body, timeout=10)


results = hnp.arrays(
    dtype=st.sampled_from(PRODUCED),
    shape=hnp.array_shapes(min_dims=1, max_dims=2, max_side=3),
    elements={"allow_nan": False, "allow_infinity": False},
)


@given(array=results, func=st.sampled_from(list(DECLARED)))
@GENERATED
def test_a_result_is_cast_to_its_declared_dtype_or_a_500_names_declared_and_produced(url, array, func):
    dtype, shape = DECLARED[func]
    spec = spec_of(array)
    answer = requests.post(f"{url}/{func.__name__}", json={"spec": spec}, timeout=10)
    v2 = v2_json(url, func.__name__, spec)
    if fits(array, dtype, shape):
        expected = array.astype(dtype)
        assert answer.status_code == 200, answer.text
        assert np.array_equal(np.array(answer.json(), dtype=dtype), expected), (answer.text, array)
        assert v2.status_code == 200, v2.text
        output = v2.json()["outputs"][0]
        assert output["datatype"] == V2_NAMES[dtype] and output["shape"] == list(array.shape), v2.text
        assert np.array_equal(np.array(output["data"], dtype=dtype), expected.ravel()), (v2.text, array)
    else:
        for got in (answer, v2):
            assert got.status_code == 500, (got.text, array)
            error = got.json()["error"]
            assert error.startswith(f"{func.__name__}() raised ResultMismatch"), error
            assert f"dtype {dtype}" in error and f"dtype {array.dtype}" in error, error
            assert f"shape {array.shape}" in error, error


@pytest.mark.parametrize(
    ("func", "array", "expected"),
    [
        (rows_f32, np.ones((2, 3), dtype=np.float32), "expected shape (-1, 2)"),
        (rows_f32, np.array([[1e300, 1.0]]), "beyond the range of float32"),
        (any_i8, np.array([300, -200]), "beyond the range of int8"),
        (any_i8, np.array([1.5]), "expected integers"),
        (torch_u8, np.array([-1, 256]), "beyond the range of uint8"),
    ],
)
def test_triton_clients_get_the_declared_datatype_or_a_500(url, func, array, expected):
    with triton.InferenceServerClient(url=url.removeprefix("http://")) as client:
        spec = triton.InferInput("spec", [1], "BYTES")
        spec.set_data_from_numpy(np.array([spec_of(array).encode()], dtype=object))
        with pytest.raises(InferenceServerException, match=re.escape(expected)):
            client.infer(func.__name__, [spec], outputs=[triton.InferRequestedOutput("output", binary_data=True)])
        dtype, _ = DECLARED[func]
        fitting = np.array([[1, 2]], dtype=np.float64)
        spec.set_data_from_numpy(np.array([spec_of(fitting).encode()], dtype=object))
        result = client.infer(func.__name__, [spec], outputs=[triton.InferRequestedOutput("output", binary_data=True)])
        assert result.as_numpy("output").dtype == np.dtype(dtype)
        assert result.get_output("output")["datatype"] == V2_NAMES[dtype]


def test_a_task_whose_result_contradicts_its_declared_shape_fails_and_a_fitting_one_is_cast(url):
    bad = requests.post(f"{url}/task_f32/submit", json={"spec": spec_of(np.ones((2, 3)))}, timeout=5)
    wait_for(f"{url}/task_f32", bad.json()["task_id"], "failed")
    got = requests.get(f"{url}/task_f32/get", params={"task_id": bad.json()["task_id"]}, timeout=5)
    assert got.status_code == 500 and "expected shape (-1, 2)" in got.json()["error"], got.text
    good = requests.post(f"{url}/task_f32/submit", json={"spec": spec_of(np.array([[0.1, 2.0]]))}, timeout=5)
    wait_for(f"{url}/task_f32", good.json()["task_id"], "completed")
    got = requests.get(f"{url}/task_f32/get", params={"task_id": good.json()["task_id"]}, timeout=5)
    assert got.json() == [[float(str(np.float32(0.1))), 2.0]], got.text


def test_a_stream_item_that_does_not_fit_its_declared_dtype_ends_the_stream_with_an_error(url):
    answer = requests.post(
        f"{url}/items_i8",
        json={"spec": spec_of(np.array([300]))},
        headers={"accept": "application/x-ndjson"},
        timeout=10,
    )
    lines: list[Any] = [json.loads(line) for line in answer.text.splitlines() if line]
    assert lines[0] == [1, 2]
    assert "beyond the range of int8" in lines[1]["error"], answer.text
