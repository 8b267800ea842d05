"""A tensor refuses JSON integers that int64 cannot hold with a 400 naming the field, wherever they sit and
whatever they are mixed with (never a silent float); a declared uint64 takes the integers it holds, exactly."""

from __future__ import annotations

import json
from typing import Annotated

import numpy as np
import pytest
import requests
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bento_jupyter import DType, api

SEEN: list[list] = []


@api(batchable=True, max_batch_size=8)
def batched(rows: np.ndarray) -> np.ndarray:
    return rows


def single(rows: np.ndarray) -> np.ndarray:
    return rows


def single_torch(rows: torch.Tensor) -> torch.Tensor:
    return rows


def unsigned(rows: Annotated[np.ndarray, DType("uint64")]) -> list[str]:
    SEEN.append([str(rows.dtype), *map(str, rows.ravel().tolist())])
    return [str(v) for v in rows.ravel().tolist()]


@pytest.fixture(scope="module")
def url():
    from bento_jupyter.server.app import ServiceApp
    from bento_jupyter.server.runner import ThreadedServer
    from bento_jupyter.service.definition import ServiceDefinition

    definition = ServiceDefinition.from_functions("ints", (batched, single, single_torch, unsigned))
    server = ThreadedServer(ServiceApp(definition), "127.0.0.1", None)
    server.start()
    yield server.url
    server.stop()


def post(url: str, route: str, rows: list) -> requests.Response:
    body = json.dumps({"rows": rows})  # the standard library writes big integers exactly
    return requests.post(f"{url}/{route}", data=body, headers={"content-type": "application/json"}, timeout=10)


beyond_int64 = st.integers(min_value=2**63) | st.integers(max_value=-(2**63) - 1)
others = st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    big=beyond_int64,
    row=st.lists(others, min_size=1, max_size=3),
    where=st.integers(0, 3),
    route=st.sampled_from(["batched", "single", "single_torch"]),
)
@example(big=2**63 + 1, row=[1], where=0, route="single")
@example(big=2**64 - 1, row=[1], where=0, route="batched")
@example(big=-(2**63) - 1, row=[1], where=0, route="single_torch")
@example(big=2**63 + 1, row=[1.5], where=0, route="batched")  # among floats: the fast body path too
def test_an_integer_beyond_int64_in_a_tensor_is_refused_naming_the_field(url, big, row, where, route):
    row.insert(min(where, len(row)), big)
    answer = post(url, route, [row])
    assert answer.status_code == 400, answer.text
    assert answer.json()["field"] == "rows"
    assert str(big) in answer.json()["error"]


@pytest.mark.parametrize("route", ["batched", "single"])
def test_integers_within_int64_still_pass_exactly(url, route):
    rows = [[2**63 - 1, -(2**63)], [0, 1]]
    answer = post(url, route, rows)
    assert answer.status_code == 200 and answer.json() == rows


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=4))
@example(values=[2**64 - 1, 1])
def test_a_declared_uint64_takes_every_uint64_exactly(url, values):
    SEEN.clear()
    answer = post(url, "unsigned", [values])
    assert answer.status_code == 200, answer.text
    assert [["uint64", *map(str, values)]] == SEEN
    assert answer.json() == [str(v) for v in values]


def test_a_declared_uint64_refuses_what_it_cannot_hold(url):
    for rows in ([[2**64, 1]], [[-1, 2**63]]):
        answer = post(url, "unsigned", rows)
        assert answer.status_code == 400 and answer.json()["field"] == "rows", answer.text
