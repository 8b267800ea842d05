"""Errors say what went wrong: what a batchable handler returned instead of one item per input, a float that is
no int under ``-> int``, a lone UTF-16 surrogate in a request's JSON."""

from __future__ import annotations

import numpy as np
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bento_jupyter import api

RETURNED: list = []  # what the batchable handlers return, set by the test


@api(batchable=True, max_batch_size=8)
def rows(x: np.ndarray) -> np.ndarray:
    return RETURNED[-1]() if callable(RETURNED[-1]) else RETURNED[-1]


@api(batchable=True, max_batch_size=8, batch_dim=1)
def columns(x: np.ndarray) -> np.ndarray:
    return x.sum(axis=0)  # one value per row, not per column: a 1-d result


def count(x: float) -> int:
    return x


def echo(s: str) -> str:
    return s


@pytest.fixture(scope="module")
def url():
    from bento_jupyter.server.app import ServiceApp
    from bento_jupyter.server.runner import ThreadedServer
    from bento_jupyter.service.definition import ServiceDefinition

    definition = ServiceDefinition.from_functions("errors", (rows, columns, count, echo))
    server = ThreadedServer(ServiceApp(definition), "127.0.0.1", None)
    server.start()
    yield server.url
    server.stop()


def _generator():
    yield 1


@pytest.mark.parametrize(
    ("returned", "described"),
    [
        (None, "got NoneType for 1 input item"),
        (_generator, "got generator for 1 input item"),
        (np.zeros((3, 2)), "got ndarray of shape (3, 2) for 1 input item"),
        ([1, 2], "got list of length 2 for 1 input item"),
    ],
)
def test_a_batchable_handler_returning_the_wrong_thing_is_told_what_it_returned(url, returned, described):
    RETURNED.append(returned)
    answer = requests.post(f"{url}/rows", json={"x": [[1.0, 2.0]]}, timeout=10)
    assert answer.status_code == 500
    assert described in answer.json()["error"]


def test_a_1d_result_along_batch_dim_1_is_described_by_its_shape(url):
    answer = requests.post(f"{url}/columns", json={"x": [[1.0, 2.0], [3.0, 4.0]]}, timeout=10)
    assert answer.status_code == 500
    assert "along batch_dim 1: got ndarray of shape (2,) for 2 input items" in answer.json()["error"]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(x=st.floats().filter(lambda v: not v.is_integer()))
def test_a_float_that_is_no_whole_number_under_an_int_hint_is_a_500_saying_so(url, x):
    answer = requests.post(f"{url}/count", data=f'{{"x": {x!r}}}'.replace("nan", "NaN").replace("inf", "Infinity"),
                           headers={"content-type": "application/json"}, timeout=10)  # fmt: skip
    assert answer.status_code == 500, answer.text
    assert "is no int, as its return hint declares" in answer.json()["error"]


def test_a_whole_float_under_an_int_hint_still_answers(url):
    assert requests.post(f"{url}/count", json={"x": 3.0}, timeout=10).status_code == 200


@pytest.mark.parametrize("escape", [rb"\ud800", rb"\ud800x", rb"\udc00", rb"\ud800\u0041"])
def test_a_lone_surrogate_is_a_400_naming_the_problem(url, escape):
    body = b'{"s": "' + escape + b'"}'
    answer = requests.post(f"{url}/echo", data=body, headers={"content-type": "application/json"}, timeout=10)
    assert answer.status_code == 400
    assert "invalid unicode escape" in answer.json()["error"]


def test_a_surrogate_pair_is_text(url):
    body = rb'{"s": "\ud83e\udd16"}'
    answer = requests.post(f"{url}/echo", data=body, headers={"content-type": "application/json"}, timeout=10)
    assert answer.status_code == 200 and answer.text == "\N{ROBOT FACE}"
