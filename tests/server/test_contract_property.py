"""The serving contract as a property: for every type hint and value, at 1 and at 32 concurrent clients, the
answer of the BentoML-style route and of /v2/models/{api}/infer equals calling the function in the kernel,
and every request is answered."""

from __future__ import annotations

import enum
import json
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import pytest
import requests
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from pydantic import BaseModel

from bento_jupyter import api
from bento_jupyter.server.app import ServiceApp
from bento_jupyter.server.runner import ThreadedServer
from bento_jupyter.service.definition import ServiceDefinition

JSON = {"content-type": "application/json"}
NON_FINITE = {"NaN", "Infinity", "-Infinity"}
INT64 = (-(2**63), 2**63 - 1)


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Point(BaseModel):
    x: float
    y: float
    tags: list[int] = []


def echo_int(x: int) -> int:
    return x


def echo_float(x: float) -> float:
    return x * 3


def echo_bool(x: bool) -> bool:
    return not x


def echo_str(x: str) -> str:
    return x[::-1]


def echo_ints(x: list[int]) -> list[int]:
    return [v - 1 for v in x]


def echo_floats(x: list[float]) -> list[float]:
    return np.asarray(x, dtype=np.float64) / 2 if x else []


def echo_dict(x: dict[str, float]) -> dict[str, float]:
    return {k: np.float32(v) for k, v in x.items()}


def echo_optional(x: Optional[int] = None) -> Optional[int]:  # noqa: UP045
    return x


def echo_color(x: Color) -> Color:
    return Color.BLUE if x is Color.RED else Color.RED


def echo_point(p: Point) -> Point:
    return Point(x=p.y, y=p.x, tags=p.tags[::-1])


def echo_any(x):
    return {"got": x}


@api(batchable=True, max_batch_size=16)
def double_rows(x: np.ndarray) -> np.ndarray:
    return x * 2


def scale_tensor(x: torch.Tensor) -> torch.Tensor:
    return x * 0.5


@api(batchable=True, max_batch_size=16)
def lengths(texts: list[str]) -> list[int]:
    return [len(t) for t in texts]


text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
finite = st.floats(allow_nan=False, allow_infinity=False)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**80), 2**80) | finite | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)
rows = hnp.arrays(np.float64, st.tuples(st.integers(1, 3), st.just(4)), elements=st.floats(-1e6, 1e6))


@dataclass(frozen=True)
class Case:
    """One API: a strategy of its argument's JSON value, how the kernel sees that value, and its v2 tensor."""

    func: Any
    values: st.SearchStrategy[Any]
    argument: Any = None  # JSON value -> the handler's argument (default: itself)
    datatype: str = "BYTES"  # of its v2 input tensor; BYTES of JSON text unless the parameter is a str
    in_v2: Any = None  # JSON value -> whether /v2 can carry it (default: always)

    @property
    def param(self) -> str:
        return next(iter(self.func.__annotations__), "x")

    def call(self, value: Any) -> Any:
        return self.func(self.argument(value) if self.argument else value)

    def tensor(self, value: Any) -> dict[str, Any]:
        if self.datatype == "BYTES":
            is_text = self.func in (echo_str, lengths, echo_color)  # string-typed: BYTES are the text itself
            data = value if isinstance(value, list) else [value]
            data = data if is_text else [json.dumps(value)]
            return {"name": self.param, "datatype": "BYTES", "shape": [len(data)], "data": data}
        array = np.asarray(value)
        shape = list(array.shape) or [1]
        return {"name": self.param, "datatype": self.datatype, "shape": shape, "data": array.ravel().tolist()}


def _fits_int64(value: Any) -> bool:
    return all(INT64[0] <= v <= INT64[1] for v in (value if isinstance(value, list) else [value]))


CASES = [
    Case(echo_int, st.integers(-(2**100), 2**100), datatype="INT64", in_v2=_fits_int64),
    Case(echo_float, finite, datatype="FP64"),
    Case(echo_bool, st.booleans(), datatype="BOOL"),
    Case(echo_str, text),
    Case(echo_ints, st.lists(st.integers(*INT64), max_size=5), datatype="INT64"),
    Case(echo_floats, st.lists(finite, max_size=5), datatype="FP64"),
    Case(echo_dict, st.dictionaries(text, st.floats(-1e30, 1e30), max_size=4)),
    Case(echo_optional, st.none() | st.integers(*INT64)),
    Case(echo_color, st.sampled_from(["red", "blue"]), argument=Color),
    Case(
        echo_point,
        st.fixed_dictionaries({"x": finite, "y": finite, "tags": st.lists(st.integers(-9, 9))}),
        argument=lambda v: Point(**v),
    ),
    Case(echo_any, json_values),
    Case(double_rows, rows.map(lambda a: a.tolist()), argument=np.asarray, datatype="FP64"),
    Case(
        scale_tensor,
        st.lists(finite.filter(lambda f: abs(f) < 1e30), min_size=1, max_size=6),
        argument=lambda v: torch.tensor(v, dtype=torch.float32),
        datatype="FP32",
    ),
    Case(lengths, st.lists(text, max_size=4)),
]


def same(answer: Any, direct: Any) -> bool:
    """Whether a decoded JSON answer is the direct result, in the documented encoding."""
    if isinstance(direct, torch.Tensor):
        direct = direct.numpy()
    if isinstance(direct, np.ndarray):
        return np.array_equal(np.asarray(answer, dtype=direct.dtype), direct)
    if isinstance(answer, np.ndarray):
        answer = answer.tolist()
    if isinstance(direct, np.generic):
        return float(answer) == float(direct) if direct.dtype.kind == "f" else answer == direct.item()
    if isinstance(direct, BaseModel):
        return same(answer, dict(direct))
    if isinstance(direct, enum.Enum):
        return answer == direct.value
    if isinstance(direct, float) and not math.isfinite(direct):
        return (answer in NON_FINITE and float(answer.replace("Infinity", "inf")) == direct) or direct != direct
    if isinstance(direct, dict):
        return (
            isinstance(answer, dict)
            and answer.keys() == direct.keys()
            and all(same(answer[k], v) for k, v in direct.items())
        )
    if isinstance(direct, (list, tuple)):
        return isinstance(answer, list) and len(answer) == len(direct) and all(map(same, answer, direct))
    if isinstance(direct, bool) or isinstance(answer, bool):
        return answer is direct
    return answer == direct


def from_v2(output: dict[str, Any], direct: Any) -> Any:
    data = output["data"]
    if output["datatype"] != "BYTES":
        return np.asarray(data).reshape(output["shape"])
    if isinstance(direct, (str, enum.Enum)):  # text, sent as itself
        return data[0]
    if isinstance(direct, list) and direct and all(isinstance(d, str) for d in direct):
        return data
    return json.loads(data[0])


@pytest.fixture(scope="module")
def url():
    server = ThreadedServer(ServiceApp(ServiceDefinition.from_functions("contract", [c.func for c in CASES])))
    server.start()
    yield server.url
    server.stop()


@pytest.fixture(scope="module")
def clients():
    with ThreadPoolExecutor(32) as pool:
        yield pool


def ask(url: str, case: Case, value: Any) -> tuple[Any, Any]:
    """(BentoML-route answer, v2 answer or None) for one value, both decoded from JSON."""
    name = case.func.__name__
    body = json.dumps({case.param: value})  # Python's json: big integers exact
    route = requests.post(f"{url}/{name}", data=body, headers=JSON, timeout=30)
    assert route.status_code == 200, (name, value, route.text)
    answer = route.text if route.headers["content-type"].startswith("text/plain") else json.loads(route.text)
    if case.in_v2 is not None and not case.in_v2(value):
        return answer, None
    v2 = requests.post(f"{url}/v2/models/{name}/infer", json={"inputs": [case.tensor(value)]}, timeout=30)
    assert v2.status_code == 200, (name, value, v2.text)
    return answer, v2.json()["outputs"][0]


@given(case=st.sampled_from(CASES), data=st.data(), concurrency=st.sampled_from([1, 32]))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_every_answer_equals_the_direct_call_at_1_and_32_clients(url, clients, case, data, concurrency):
    values = data.draw(st.lists(case.values, min_size=concurrency, max_size=concurrency), label="values")
    answers = list(clients.map(lambda v: ask(url, case, v), values, timeout=60))
    assert len(answers) == len(values)  # every request answered
    for value, (answer, v2) in zip(values, answers, strict=True):
        direct = case.call(value)
        assert same(answer, direct), (case.func.__name__, value, answer, direct)
        if v2 is not None:
            assert same(from_v2(v2, direct), direct), (case.func.__name__, value, v2, direct)
