"""A result is checked against its return hint (README: Types says under which hint kinds): one that does not match
is a 500 naming the API, what the hint declares and what came back, on the API's route, as a task and on v2; numpy
and torch scalars and 0-d arrays count as the Python numbers they hold, and a whole float is an ``int``."""

from __future__ import annotations

import json
import math
from typing import Any, Literal, Optional, Union

import numpy as np
import pytest
import requests
import torch
import tritonclient.http as triton
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from tritonclient.utils import InferenceServerException
from typing_extensions import TypedDict  # pydantic needs it for a TypedDict on Python < 3.12

from bento_jupyter import api
from tests.server.test_tasks import wait_for

GENERATED = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
KINDS = ["python", "numpy", "float32", "array", "tensor"]


class Point(BaseModel):
    a: int


def made(kind: str, x: int | float) -> Any:
    """``x`` as the handler returns it: a Python number, a numpy scalar, a 0-d array or a 0-d tensor."""
    if kind == "python":
        return x
    if kind == "numpy":
        return np.int64(x) if isinstance(x, int) else np.float64(x)
    if kind == "float32":
        return np.float32(x)
    if kind == "array":
        return np.array(x)
    return torch.tensor(x, dtype=torch.int64 if isinstance(x, int) else torch.float64)


def plain(kind: str, x: int | float) -> int | float:
    """The Python number ``made(kind, x)`` holds (a float32 as its shortest own form)."""
    value = made(kind, x)
    return float(str(value)) if kind == "float32" else value.item() if kind != "python" else value


def as_int(kind: str, x: int | float) -> int:
    return made(kind, x)


def as_float(kind: str, x: int | float) -> float:
    return made(kind, x)


def as_bool(kind: str, x: int | float) -> bool:
    return made(kind, x)


def as_str(kind: str, x: int | float) -> str:
    return made(kind, x)


def as_optional_int(kind: str, x: int | float) -> Optional[int]:  # noqa: UP045 (the hint form under test)
    return made(kind, x)


def as_int_or_str(kind: str, x: int | float) -> Union[int, str]:  # noqa: UP007 (the hint form under test)
    return made(kind, x)


def as_list_of_int(kind: str, x: int | float) -> list[int]:
    return [made(kind, x)]


def as_dict_of_int(kind: str, x: int | float) -> dict[str, int]:
    return {"v": made(kind, x)}


def as_tuple(kind: str, x: int | float) -> tuple[str, int]:
    return ("v", made(kind, x))


def as_model(kind: str, x: int | float) -> Point:
    return {"a": made(kind, x)}  # type: ignore[return-value]  (a dict where a model is declared: pydantic's lax form)


INTEGRAL = [as_int, as_optional_int, as_int_or_str, as_list_of_int, as_dict_of_int, as_tuple, as_model]
HINTS = [*INTEGRAL, as_float, as_bool, as_str]


@api(task=True)
def int_task(kind: str, x: int | float) -> int:
    return made(kind, x)


@pytest.fixture
def url(serve) -> str:
    return serve("hints", *HINTS, int_task).url


def whole(value: int | float) -> bool:
    return isinstance(value, int) or (math.isfinite(value) and value.is_integer())


def number_in(func: Any, answer: Any) -> Any:
    """The one number in an answer of ``func``'s shape."""
    if func is as_list_of_int:
        return answer[0]
    if func is as_dict_of_int:
        return answer["v"]
    if func is as_tuple:
        return answer[1]
    if func is as_model:
        return answer["a"]
    return answer


def same(got: Any, expected: int | float) -> bool:
    if isinstance(expected, float) and not math.isfinite(expected):
        return got == ("NaN" if math.isnan(expected) else "Infinity" if expected > 0 else "-Infinity")
    return got == expected


numbers = st.one_of(
    st.integers(-(2**53), 2**53),
    st.floats(),
    st.integers(-(2**40), 2**40).map(float),  # whole floats
)


@given(kind=st.sampled_from(KINDS), x=numbers, func=st.sampled_from(HINTS))
@GENERATED
def test_a_result_answers_only_when_it_is_what_its_hint_declares(url, kind, x, func):
    if kind == "float32" and isinstance(x, float) and math.isfinite(x) and abs(x) > 3e38:
        x = 1.5  # beyond float32: not the point here
    value = plain(kind, x)
    fits = (func in INTEGRAL and whole(value)) or func is as_float
    answer = requests.post(f"{url}/{func.__name__}", data=json.dumps({"kind": kind, "x": x}), timeout=10)
    if fits:
        assert answer.status_code == 200, (answer.text, value)
        assert same(number_in(func, answer.json()), value), (answer.text, value)
    else:
        assert answer.status_code == 500, (answer.text, value)
        error = answer.json()["error"]
        assert error.startswith(f"{func.__name__}() raised") and "as its return hint declares" in error, error


@pytest.mark.parametrize(
    ("func", "expected"),
    [(as_int, "is no int"), (as_list_of_int, "is no list[int]"), (as_bool, "is no bool"), (as_model, "Point")],
)
def test_the_500_names_the_api_what_its_hint_declares_and_what_came_back(url, func, expected):
    answer = requests.post(f"{url}/{func.__name__}", json={"kind": "array", "x": 2.5}, timeout=10)
    assert answer.status_code == 500
    error = answer.json()["error"]
    assert error.startswith(f"{func.__name__}() raised") and expected in error and "2.5" in error, error


@pytest.mark.parametrize("kind", KINDS)
def test_a_task_whose_result_does_not_match_its_hint_fails(url, kind):
    task_id = requests.post(f"{url}/int_task/submit", json={"kind": kind, "x": 2.5}, timeout=5).json()["task_id"]
    wait_for(f"{url}/int_task", task_id, "failed")
    got = requests.get(f"{url}/int_task/get", params={"task_id": task_id}, timeout=5)
    assert got.status_code == 500 and "is no int" in got.json()["error"], got.text


@pytest.mark.parametrize("kind", KINDS)
def test_a_v2_result_that_does_not_match_its_hint_is_a_500(url, kind):
    with triton.InferenceServerClient(url=url.removeprefix("http://")) as client:
        inputs = [triton.InferInput("kind", [1], "BYTES"), triton.InferInput("x", [1], "FP64")]
        inputs[0].set_data_from_numpy(np.array([kind.encode()], dtype=object))
        inputs[1].set_data_from_numpy(np.array([2.5]))
        with pytest.raises(InferenceServerException, match="is no int"):
            client.infer("as_int", inputs)
        inputs[1].set_data_from_numpy(np.array([4.0]))
        assert client.infer("as_int", inputs).as_numpy("output").tolist() == 4.0


class Sized(TypedDict):
    w: int
    h: int


def returning(name: str, hint: Any, value: Any, *, task: bool = False) -> Any:
    """An API named ``name`` (taking ``k: str``) whose result is ``value`` under the return hint ``hint``."""

    def handler(k: str) -> Any:
        return value

    handler.__name__ = handler.__qualname__ = name
    handler.__annotations__ = {"k": str, "return": hint}
    return api(task=True)(handler) if task else handler


# results pydantic's serializer writes without a warning, though the hint does not hold them (answered 200 before)
UNWRITTEN: list[tuple[str, Any, Any]] = [
    ("literal_out_of_range", Literal[1, 2], 3),
    ("none_as_int", int, None),
    ("none_as_float", float, None),
    ("none_as_union", Union[int, str], None),  # noqa: UP007 (the hint form under test)
    ("none_in_list_of_float", list[float], [None]),
    ("none_in_dict_of_float", dict[str, float], {"a": None}),
    ("none_as_str", str, None),
    ("bytes_as_str", str, b"x"),
    ("bool_as_float", float, True),
    ("numpy_bool_as_float", float, np.bool_(True)),
    ("typed_dict_missing_a_key", Sized, {"w": 1}),
    ("text_as_ndarray", np.ndarray, "x"),
    ("dict_as_ndarray", np.ndarray, {"a": 1}),
    ("text_as_tensor", torch.Tensor, "x"),
]


@pytest.fixture
def unwritten_url(serve) -> str:
    funcs = [returning(name, hint, value) for name, hint, value in UNWRITTEN]
    return serve("unwritten", *funcs, returning("none_as_str_task", str, None, task=True)).url


@pytest.mark.parametrize("name", [case[0] for case in UNWRITTEN])
def test_a_result_the_serializer_writes_though_the_hint_does_not_hold_it_is_a_500(unwritten_url, name):
    answer = requests.post(f"{unwritten_url}/{name}", json={"k": "x"}, timeout=10)
    assert answer.status_code == 500, answer.text
    error = answer.json()["error"]
    assert error.startswith(f"{name}() raised ResultMismatch") and "as its return hint declares" in error, error


def test_none_under_str_fails_alike_on_the_route_and_as_a_task(unwritten_url):
    assert requests.post(f"{unwritten_url}/none_as_str_task", json={"k": "x"}, timeout=10).status_code == 500
    task_id = requests.post(f"{unwritten_url}/none_as_str_task/submit", json={"k": "x"}, timeout=5).json()["task_id"]
    wait_for(f"{unwritten_url}/none_as_str_task", task_id, "failed")


# everyday numpy and torch forms of a valid result, under each hint: they stay 200
VALID_FORMS: dict[str, tuple[Any, Any]] = {
    "int": (int, st.sampled_from([np.int64(3), np.int32(3), np.uint8(3), np.array(3), np.float32(4.0), True, 4.0])),
    "float": (
        float,
        st.floats(width=32).flatmap(
            lambda x: st.sampled_from([np.float32(x), np.float64(x), np.array(x), torch.tensor(x), x, np.int64(3)])
        ),
    ),
    "list_of_float": (
        list[float],
        st.lists(st.floats(width=32), max_size=5).flatmap(
            lambda xs: st.sampled_from(
                [np.array(xs, dtype=np.float32), [np.float32(x) for x in xs], torch.tensor(xs), tuple(xs), xs]
            )
        ),
    ),
    "optional_float": (Optional[float], st.sampled_from([None, np.float32(0.2), np.array(0.3)])),  # noqa: UP045
    "literal": (Literal[1, 2], st.sampled_from([1, np.int64(1), np.array(2)])),
    "str_literal": (Literal["a", "b"], st.sampled_from(["a", np.str_("b")])),
    "union": (Union[int, str], st.sampled_from([np.int64(3), "x", np.str_("x"), np.array(3)])),  # noqa: UP007
    "typed_dict": (Sized, st.sampled_from([{"w": np.int64(1), "h": 2}, {"w": 1, "h": np.array(2)}])),
    "dict_of_float": (dict[str, float], st.sampled_from([{"a": np.float32(0.2), "b": np.int64(1)}])),
    "bool": (bool, st.sampled_from([True, np.bool_(True), np.array(True), torch.tensor(True)])),
    "str": (str, st.sampled_from(["x", np.str_("x")])),
    "ndarray": (np.ndarray, st.sampled_from([np.array([0.2], dtype=np.float32), np.array(7.0), [1.0, 2.0]])),
}
VALID = dict.fromkeys(VALID_FORMS)


def valid_form(name: str) -> Any:
    def handler(k: str) -> Any:
        return VALID[name]

    handler.__name__ = handler.__qualname__ = f"valid_{name}"
    handler.__annotations__ = {"k": str, "return": VALID_FORMS[name][0]}
    return handler


@pytest.fixture
def valid_url(serve) -> str:
    return serve("valid", *[valid_form(name) for name in VALID_FORMS]).url


@given(data=st.data(), name=st.sampled_from(sorted(VALID_FORMS)))
@GENERATED
def test_everyday_numpy_and_torch_forms_of_a_valid_result_stay_200(valid_url, data, name):
    VALID[name] = data.draw(VALID_FORMS[name][1])
    answer = requests.post(f"{valid_url}/valid_{name}", json={"k": "x"}, timeout=10)
    assert answer.status_code == 200, (answer.text, VALID[name])
