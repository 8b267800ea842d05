"""NaN and ±Infinity are the documented strings, never ``null``, under any return hint or none, in plain answers,
stream items (SSE, NDJSON, a JSON array) and task results; numpy scalars and arrays too."""

from __future__ import annotations

import json
import math
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
import requests
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bento_jupyter import api

GENERATED = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
JSON = {"content-type": "application/json"}


def numpyish(value: Any) -> Any:
    """Float leaves as numpy float32/float64 scalars, lists of floats as arrays: what notebooks return."""
    if isinstance(value, float):
        return np.float32(value) if abs(value) < 1e30 or not math.isfinite(value) else np.float64(value)
    if isinstance(value, list) and value and all(isinstance(item, float) for item in value):
        return np.asarray(value)
    if isinstance(value, list):
        return [numpyish(item) for item in value]
    if isinstance(value, dict):
        return {key: numpyish(item) for key, item in value.items()}
    return value


def as_dict(value: Any, numpy: bool = False) -> dict:
    return {"v": numpyish(value) if numpy else value}


def as_any(value: Any, numpy: bool = False) -> Any:
    return {"v": numpyish(value) if numpy else value}


def as_none(value: Any, numpy: bool = False):
    return {"v": numpyish(value) if numpy else value}


def as_floats(value: list[float], numpy: bool = False) -> list[float]:
    return np.asarray(value) if numpy else value


async def streamed(value: Any, numpy: bool = False) -> AsyncIterator[dict]:
    yield {"v": numpyish(value) if numpy else value}
    yield {"f": np.float32("nan")}


def made(scale: float) -> dict:
    """Non-finite values the handler makes itself (a v2 request cannot carry them: its JSON has no NaN)."""
    return {"nan": np.float32("nan") * scale, "inf": [math.inf * scale, np.array([-math.inf]) * scale]}


@api(task=True)
def tasked(value: Any, numpy: bool = False) -> dict:
    return {"v": numpyish(value) if numpy else value}


@pytest.fixture
def url(serve) -> str:
    return serve("nonfinite", as_dict, as_any, as_none, as_floats, streamed, tasked, made).url


def post(url: str, route: str, headers: dict | None = None, **body: Any) -> requests.Response:
    """Python's own JSON, which writes NaN and Infinity as the bare tokens the server reads."""
    return requests.post(f"{url}/{route}", data=json.dumps(body), headers={**JSON, **(headers or {})}, timeout=10)


def from_json(value: Any) -> Any:
    if isinstance(value, str):
        return NON_FINITE.get(value, value)
    if isinstance(value, list):
        return [from_json(item) for item in value]
    if isinstance(value, dict):
        return {key: from_json(item) for key, item in value.items()}
    return value


def same(got: Any, expected: Any) -> bool:
    """Equal, a float as the float32 it was drawn as: a numpy float32 is written in its own shortest form."""
    if isinstance(expected, float):
        return isinstance(got, float) and (np.float32(got) == expected or (math.isnan(got) and math.isnan(expected)))
    if isinstance(expected, list):
        return isinstance(got, list) and len(got) == len(expected) and all(map(same, got, expected))
    if isinstance(expected, dict):
        return isinstance(got, dict) and got.keys() == expected.keys() and all(same(got[k], expected[k]) for k in got)
    return got == expected


floats = st.floats(allow_nan=True, allow_infinity=True, width=32)  # float32-exact, so numpy scalars keep them
values = st.recursive(
    floats | st.integers(-1000, 1000) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text("abc", min_size=1, max_size=3), inner, max_size=4)
    ),
    max_leaves=12,
)


@given(value=values, numpy=st.booleans(), route=st.sampled_from(["as_dict", "as_any", "as_none"]))
@example(value={"a": [math.nan, math.inf]}, numpy=False, route="as_dict")
@example(value=[-math.inf, {"b": [math.nan, 1.5]}], numpy=True, route="as_any")
@example(value={"c": math.inf}, numpy=True, route="as_none")
@GENERATED
def test_non_finite_floats_anywhere_in_a_plain_answer_are_strings(url, value, numpy, route):
    answer = post(url, route, value=value, numpy=numpy)
    assert answer.status_code == 200, answer.text
    assert b"null" not in answer.content
    assert same(from_json(answer.json()), {"v": value})


@given(value=st.lists(floats, max_size=6), numpy=st.booleans())
@GENERATED
def test_non_finite_floats_under_a_list_hint_are_strings(url, value, numpy):
    answer = post(url, "as_floats", value=value, numpy=numpy)
    assert answer.status_code == 200, answer.text
    assert b"null" not in answer.content
    assert same(from_json(answer.json()), value)


def stream_items(response: requests.Response) -> list[Any]:
    media = response.headers["content-type"]
    if media.startswith("text/event-stream"):
        return [json.loads(line[5:]) for line in response.text.splitlines() if line.startswith("data:")]
    if media.startswith("application/x-ndjson"):
        return [json.loads(line) for line in response.text.splitlines() if line.strip()]
    return response.json()


@given(
    value=values,
    numpy=st.booleans(),
    accept=st.sampled_from(["text/event-stream", "application/x-ndjson", "application/json"]),
)
@GENERATED
def test_non_finite_floats_in_stream_items_are_strings_in_every_framing(url, value, numpy, accept):
    answer = post(url, "streamed", headers={"Accept": accept}, value=value, numpy=numpy)
    assert answer.status_code == 200, answer.text
    assert b"null" not in answer.content
    items = from_json(stream_items(answer))
    assert len(items) == 2
    assert same(items[0], {"v": value}) and math.isnan(items[1]["f"])


def task_result(url: str, body: dict) -> requests.Response:
    task_id = requests.post(f"{url}/tasked/submit", data=json.dumps(body), headers=JSON, timeout=5).json()["task_id"]
    deadline = time.monotonic() + 10
    while requests.get(f"{url}/tasked/status", params={"task_id": task_id}, timeout=5).json()["status"] != "completed":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    return requests.get(f"{url}/tasked/get", params={"task_id": task_id}, timeout=5)


@pytest.mark.parametrize("numpy", [False, True])
def test_non_finite_floats_in_a_task_result_are_strings(url, numpy):
    value = {"nan": math.nan, "inf": [math.inf, -math.inf], "deep": {"x": [1.5, math.nan]}}
    got = task_result(url, {"value": value, "numpy": numpy})
    assert got.status_code == 200, got.text
    assert b"null" not in got.content
    assert same(from_json(got.json()), {"v": value})


def test_the_reported_cases_answer_nan_not_null(url):
    assert post(url, "as_dict", value=math.nan).json() == {"v": "NaN"}
    assert post(url, "as_none", value=[math.inf, -math.inf]).json() == {"v": ["Infinity", "-Infinity"]}


def test_non_finite_floats_in_an_open_inference_bytes_output_are_strings(url):
    body = {"inputs": [{"name": "scale", "shape": [1], "datatype": "FP64", "data": [2.0]}]}
    answer = requests.post(f"{url}/v2/models/made/infer", json=body, timeout=10)
    assert answer.status_code == 200, answer.text
    (output,) = answer.json()["outputs"]
    assert output["datatype"] == "BYTES"
    assert json.loads(output["data"][0]) == {"nan": "NaN", "inf": ["Infinity", ["-Infinity"]]}
