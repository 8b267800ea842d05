"""Every numpy scalar type and torch dtype, nested in any container (list, tuple, set, frozenset, deque, dict,
numpy keys included), under a ``dict``, ``Any``, set or no return hint, answers plain JSON: never a 500."""

from __future__ import annotations

import collections
import math
from typing import Any

import numpy as np
import pydantic_core
import pytest
import requests
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

RESULT: list[Any] = []  # what the handlers return, set by the test before each call

NUMPY_TYPES = [
    np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64,
    np.float16, np.float32, np.float64, np.longdouble, np.complex64, np.complex128, np.clongdouble,
]  # fmt: skip
TORCH_DTYPES = [
    torch.bool, torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8,
    torch.float16, torch.bfloat16, torch.float32, torch.float64,
]  # fmt: skip
NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def as_none():
    return RESULT[-1]


def as_dict() -> dict:
    return RESULT[-1]


def as_any() -> Any:
    return RESULT[-1]


def as_int_set() -> set[int]:
    return RESULT[-1]


@pytest.fixture(scope="module")
def url():
    from bento_jupyter.server.app import ServiceApp
    from bento_jupyter.server.runner import ThreadedServer
    from bento_jupyter.service.definition import ServiceDefinition

    definition = ServiceDefinition.from_functions("scalars", (as_none, as_dict, as_any, as_int_set))
    server = ThreadedServer(ServiceApp(definition), "127.0.0.1", None)
    server.start()
    yield server.url
    server.stop()


def _numpy_scalar(kind: type) -> st.SearchStrategy[Any]:
    if kind is np.bool_:
        return st.booleans().map(np.bool_)
    if issubclass(kind, np.integer):
        info = np.iinfo(kind)
        return st.integers(int(info.min), int(info.max)).map(kind)
    if issubclass(kind, np.complexfloating):
        return st.complex_numbers(allow_nan=False, allow_infinity=False, max_magnitude=1e30).map(kind)
    width = 16 if kind is np.float16 else 32 if kind is np.float32 else 64
    return st.floats(width=width).map(kind)


def _torch_value(dtype: torch.dtype) -> st.SearchStrategy[Any]:
    if dtype is torch.bool:
        numbers: st.SearchStrategy[Any] = st.booleans()
    elif dtype.is_floating_point:
        numbers = st.floats(width=16 if dtype is torch.float16 else 32)
    else:
        info = torch.iinfo(dtype)
        numbers = st.integers(info.min, info.max)
    return st.lists(numbers, max_size=3).map(lambda v: torch.tensor(v, dtype=dtype)) | numbers.map(
        lambda v: torch.tensor(v, dtype=dtype)  # 0-d
    )


numpy_scalars = st.sampled_from(NUMPY_TYPES).flatmap(_numpy_scalar)
leaves = numpy_scalars | st.sampled_from(TORCH_DTYPES).flatmap(_torch_value)
hashable = st.sampled_from([t for t in NUMPY_TYPES if issubclass(t, np.integer)]).flatmap(_numpy_scalar)
values = st.recursive(
    leaves,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.lists(inner, max_size=3).map(tuple)
        | st.lists(inner, max_size=3).map(collections.deque)
        | st.sets(hashable, max_size=3)
        | st.frozensets(hashable, max_size=3)
        | st.dictionaries(st.text(max_size=3) | hashable, inner, max_size=3)
    ),
    max_leaves=8,
)


class Unordered(list):
    """A set's items: the answer lists them in any order."""


def expected(value: Any) -> Any:
    """The plain JSON a value stands for, worked out without the server's encoder."""
    if isinstance(value, (set, frozenset)):
        return Unordered(expected(item) for item in value)
    if isinstance(value, (list, tuple, collections.deque)):
        return [expected(item) for item in value]
    if isinstance(value, dict):
        return {str(expected(key)): expected(item) for key, item in value.items()}
    if isinstance(value, torch.Tensor):
        array = (value.float() if value.dtype is torch.bfloat16 else value).numpy()
        return expected(array[()] if array.ndim == 0 else list(array))
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (complex, np.complexfloating)):
        return pydantic_core.to_jsonable_python(complex(value))
    if isinstance(value, (np.float16, np.float32)):
        return float(str(value))  # the shortest decimal of its own dtype (README, JSON encoding)
    if isinstance(value, (float, np.floating)):
        return float(value)
    return value


def matches(want: Any, got: Any) -> bool:
    if isinstance(want, Unordered):
        return isinstance(got, list) and sorted(map(repr, want)) == sorted(map(repr, got))
    if isinstance(want, list):
        return isinstance(got, list) and len(want) == len(got) and all(map(matches, want, got))
    if isinstance(want, dict):
        return isinstance(got, dict) and want.keys() == got.keys() and all(matches(want[k], got[k]) for k in want)
    if isinstance(want, float) and not math.isfinite(want):
        return got in NON_FINITE and (math.isnan(want) if got == "NaN" else want == NON_FINITE[got])
    return type(want) is type(got) and want == got


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=values, route=st.sampled_from(["as_none", "as_dict", "as_any"]))
@example(value={"s": {np.int64(1)}}, route="as_none")
@example(value={"f": np.longdouble(1.5)}, route="as_dict")
@example(value={"c": np.clongdouble(1 + 2j), "d": collections.deque([np.int8(3)])}, route="as_any")
@example(value=[np.float32(0.2), torch.tensor([0.2, 1e-38]), np.float16(0.1)], route="as_dict")
def test_numpy_and_torch_values_in_any_container_answer_plain_json(url, value, route):
    RESULT.append({"v": value})
    answer = requests.post(f"{url}/{route}", json={}, timeout=10)
    assert answer.status_code == 200, answer.text
    assert matches({"v": expected(value)}, answer.json())


def test_a_set_of_numpy_integers_under_a_set_hint(url):
    RESULT.append({np.int64(1), 2, np.uint8(3)})
    answer = requests.post(f"{url}/as_int_set", json={}, timeout=10)
    assert answer.status_code == 200, answer.text
    assert sorted(answer.json()) == [1, 2, 3]
