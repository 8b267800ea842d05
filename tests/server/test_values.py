"""Everyday notebook values in and out of a real server: numpy and torch results, big integers, NaN, empty input."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
import requests
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from pydantic import BaseModel

from bento_jupyter import api

GENERATED = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
JSON = {"content-type": "application/json"}
DTYPES = ["float16", "float32", "float64", "int8", "int32", "int64", "uint8", "bool"]


def _array(data: list, dtype: str) -> np.ndarray:
    return np.asarray(data, dtype=dtype)


def as_dict(data: list, dtype: str) -> dict:
    array = _array(data, dtype)
    return {"array": array, "first": array.reshape(-1)[0] if array.size else None, "nested": [array, (array,)]}


def as_any(data: list, dtype: str):
    return _array(data, dtype)


def as_list(data: list, dtype: str) -> list:
    return list(_array(data, dtype))


def as_array(data: list, dtype: str) -> np.ndarray:
    return _array(data, dtype)


def as_tensor(data: list, dtype: str) -> torch.Tensor:
    return torch.from_numpy(_array(data, dtype))


def as_tensor_in_dict(data: list, dtype: str) -> dict[str, Any]:
    return {"t": torch.from_numpy(_array(data, dtype))}


def classify(x: list[float]) -> dict:
    p = np.asarray(x, dtype=np.float32)
    return {"label": int(p.argmax()), "score": p.max()}


def half(x: float) -> float:
    return np.float32(x / 2)


def doubled(x: list[float]) -> list[float]:
    return np.asarray(x) * 2


def next_id(n: int) -> int:
    return n + 1


def echo(value):
    return value


def ratio(a: float, b: float) -> float:
    return a / b if b else math.copysign(math.inf, a) if a else math.nan


class Reading(BaseModel):
    celsius: float


def fahrenheit(reading: Reading) -> float:
    return reading.celsius * 9 / 5 + 32


CALLS: list[int] = []


@api(batchable=True, max_batch_size=8)
def predict(rows: np.ndarray) -> np.ndarray:
    CALLS.append(len(rows))
    return rows.sum(axis=1)


@api(batchable=True, max_batch_size=8)
def tag(texts: list[str]) -> list[int]:
    CALLS.append(len(texts))
    return [len(t) for t in texts]


SHAPERS = [as_dict, as_any, as_list, as_array, as_tensor, as_tensor_in_dict]
APIS = [classify, half, doubled, next_id, echo, ratio, fahrenheit, predict, tag]


@pytest.fixture
def url(serve) -> str:
    return serve("values", *SHAPERS, *APIS).url


def post(url: str, route: str, **body: Any) -> requests.Response:
    """Python's own JSON, which writes NaN and Infinity as the bare tokens the server reads."""
    return requests.post(f"{url}/{route}", data=json.dumps(body), headers=JSON, timeout=10)


def from_json(value: Any) -> Any:
    """What a client makes of our JSON: the documented strings for NaN and ±Infinity read back as floats."""
    if isinstance(value, str):
        return NON_FINITE.get(value, value)
    if isinstance(value, list):
        return [from_json(item) for item in value]
    if isinstance(value, dict):
        return {key: from_json(item) for key, item in value.items()}
    return value


arrays = st.sampled_from(DTYPES).flatmap(
    lambda dtype: hnp.arrays(dtype, hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=4))
)


@given(array=arrays, shaper=st.sampled_from(SHAPERS))
@GENERATED
def test_numpy_and_torch_results_under_any_return_hint_are_plain_json(url, array, shaper):
    answer = post(url, shaper.__name__, data=array.tolist(), dtype=str(array.dtype))
    assert answer.status_code == 200, answer.text
    got = from_json(answer.json())
    direct = shaper(array.tolist(), str(array.dtype))
    if shaper is as_dict:
        got, direct = got["array"], direct["array"]
    elif shaper is as_tensor_in_dict:
        got, direct = got["t"], direct["t"].numpy()
    elif shaper is as_tensor:
        direct = direct.numpy()
    expected = np.asarray(direct)
    assert np.array_equal(np.asarray(got, dtype=expected.dtype), expected, equal_nan=expected.dtype.kind == "f")


def test_numpy_scalars_in_results_from_the_issue(url):
    assert post(url, "classify", x=[0.1, 0.7, 0.2]).json() == {"label": 1, "score": pytest.approx(0.7)}
    assert post(url, "half", x=1.0).json() == 0.5
    assert post(url, "doubled", x=[1, 2.5]).json() == [2.0, 5.0]


@given(n=st.integers(min_value=-(2**200), max_value=2**200))
@GENERATED
def test_integers_of_any_size_round_trip_exactly(url, n):
    assert post(url, "next_id", n=n).json() == n + 1
    echoed = post(url, "echo", value=[n, {"n": n}])
    assert echoed.json() == [n, {"n": n}]
    assert isinstance(echoed.json()[0], int)


def test_an_integer_too_big_for_a_tensor_is_a_400_naming_the_field(url):
    answer = post(url, "predict", rows=[[2**64 + 5, 1]])
    assert answer.status_code == 400 and answer.json()["field"] == "rows"


@given(a=st.floats(allow_nan=True, allow_infinity=True), b=st.floats(allow_nan=True, allow_infinity=True))
@GENERATED
def test_non_finite_floats_are_the_documented_strings_never_null(url, a, b):
    answer = post(url, "ratio", a=a, b=b)
    assert answer.status_code == 200, answer.text
    value = answer.json()
    direct = ratio(*json.loads(json.dumps([a, b])))  # what the server received: JSON drops a NaN's sign bit
    if math.isfinite(direct):
        assert value == direct
    else:
        assert value == ("NaN" if math.isnan(direct) else "Infinity" if direct > 0 else "-Infinity")


def test_the_schema_declares_the_non_finite_strings(url):
    document = requests.get(f"{url}/docs.json", timeout=5).json()
    output = document["paths"]["/ratio"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert {"type": "string", "enum": ["NaN", "Infinity", "-Infinity"]}.items() <= output["anyOf"][1].items()


def test_empty_batch_is_answered_without_calling_the_model(url):
    CALLS.clear()
    assert post(url, "predict", rows=[]).json() == []
    assert post(url, "tag", texts=[]).json() == []
    assert CALLS == []
    assert post(url, "predict", rows=[[1, 2]]).json() == [3]


@pytest.mark.parametrize(
    ("route", "body", "field"),
    [
        ("predict", {"rows": 5}, "rows"),
        ("predict", {"rows": False}, "rows"),
        ("fahrenheit", {"reading": {"celsius": False}}, "reading.celsius"),
        ("fahrenheit", {"reading": {"celsius": "20"}}, "reading.celsius"),
        ("next_id", {"n": 1, "m": 2}, "m"),
        ("next_id", {"n": 1.5}, "n"),
        ("tag", {"texts": "one"}, "texts"),
    ],
)
def test_values_the_schema_refuses_are_400_naming_the_field(url, route, body, field):
    answer = post(url, route, **body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["field"] == field


def test_the_schema_refuses_unknown_fields_as_the_server_does(url):
    document = requests.get(f"{url}/docs.json", timeout=5).json()
    body = document["paths"]["/next_id"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["additionalProperties"] is False and set(body["properties"]) == {"n"}


def test_405_on_an_api_route_says_which_methods_are_allowed(url):
    answer = requests.get(f"{url}/predict", timeout=5)
    assert answer.status_code == 405 and answer.headers["allow"] == "POST"
