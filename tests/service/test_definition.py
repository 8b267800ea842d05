"""What turns a function into an endpoint, and what a request must look like."""

from __future__ import annotations

from collections.abc import AsyncIterator, Generator
from typing import Any

import numpy as np
import orjson
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from bento_jupyter import api
from bento_jupyter.errors import InvalidInput, ServiceDefinitionError
from bento_jupyter.service.api import APIConfig, config_of
from bento_jupyter.service.definition import APIMethod, ServiceDefinition, choose_endpoints


class Point(BaseModel):
    x: float
    y: float


def test_decorator_keeps_the_function_callable_and_records_its_config():
    @api(batchable=True, max_batch_size=8, max_latency_ms=5)
    def double(inputs: np.ndarray) -> np.ndarray:
        return inputs * 2

    assert double(np.ones(2)).tolist() == [2.0, 2.0]
    config = config_of(double)
    assert config is not None and config.batchable and config.max_batch_size == 8


def test_bare_decorator_and_undecorated_functions_are_endpoints():
    @api
    def a(text: str) -> str:
        return text

    def b(n: int = 3) -> dict:
        return {"n": n}

    definition = ServiceDefinition.from_functions("svc", [a, b])
    assert set(definition.apis) == {"/a", "/b"}
    assert definition.apis["/b"].decode(b"") == {"n": 3}


@given(st.lists(st.booleans(), max_size=6))
def test_when_any_function_is_decorated_only_decorated_ones_are_endpoints(decorated):
    funcs = []
    for i, marked in enumerate(decorated):

        def func(x: int) -> int:
            return x

        func.__name__ = f"f{i}"
        funcs.append(api(func) if marked else func)
    choice = choose_endpoints(funcs)
    expected = [f for f, marked in zip(funcs, decorated, strict=True) if marked] if any(decorated) else funcs
    assert choice.endpoints == expected
    assert set(choice.skipped) == {f.__name__ for f in funcs if f not in expected}
    assert all(why == "not decorated with @api" for why in choice.skipped.values())


@pytest.mark.parametrize(
    "options", [{"max_batch_size": 0}, {"max_latency_ms": 0}, {"route": "no-slash"}, {"max_concurrency": 0}]
)
def test_invalid_api_options_are_refused(options):
    with pytest.raises(ServiceDefinitionError):
        api(**options)


def test_batchable_api_takes_exactly_one_parameter():
    def two(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return a

    with pytest.raises(ServiceDefinitionError, match="exactly one parameter"):
        api(batchable=True)(two)
    with pytest.raises(ServiceDefinitionError, match="exactly one parameter"):
        APIMethod.from_function(two, APIConfig(batchable=True))


@pytest.mark.parametrize("hint", [str, dict, Point, int, float, dict[str, int], "Any"])
def test_a_batchable_parameter_without_items_is_refused_when_declared(hint):
    def sentiment(text):
        return text

    sentiment.__annotations__ = {"text": Any if hint == "Any" else hint}
    with pytest.raises(ServiceDefinitionError, match=r"declare it np.ndarray or torch.Tensor .* or list\["):
        api(batchable=True, max_batch_size=8)(sentiment)
    with pytest.raises(ServiceDefinitionError, match="declare it"):
        APIMethod.from_function(sentiment, APIConfig(batchable=True))


@pytest.mark.parametrize("hint", [np.ndarray, torch.Tensor, list[str], list[Point], tuple[float, ...]])
def test_arrays_tensors_and_lists_are_batchable(hint):
    def batch(items):
        return items

    batch.__annotations__ = {"items": hint}
    assert APIMethod.from_function(api(batchable=True)(batch)).config.batchable


def test_a_list_batches_by_element_only():
    def batch(items: list[str]) -> list[int]:
        return [1] * len(items)

    with pytest.raises(ServiceDefinitionError, match="batch_dim must be 0"):
        api(batchable=True, batch_dim=1)(batch)


def test_reserved_routes_and_bad_service_names_are_refused():
    def metrics() -> int:
        return 1

    with pytest.raises(ServiceDefinitionError, match="reserved"):
        ServiceDefinition.from_functions("svc", [metrics])
    with pytest.raises(ServiceDefinitionError, match="invalid service name"):
        ServiceDefinition.from_functions("../etc", [lambda: 1])
    with pytest.raises(ServiceDefinitionError, match="defines no API"):
        ServiceDefinition.from_functions("svc", [])


def test_decode_converts_by_type_hint():
    def f(arr: np.ndarray, t: torch.Tensor, p: Point, tags: list[str], text: str) -> dict:
        return {}

    kwargs = APIMethod.from_function(f).decode(
        orjson.dumps({"arr": [[1, 2]], "t": [1.5, 2.5], "p": {"x": 1, "y": 2}, "tags": ["a"], "text": "hi"})
    )
    assert isinstance(kwargs["arr"], np.ndarray) and kwargs["arr"].shape == (1, 2)
    assert isinstance(kwargs["t"], torch.Tensor) and kwargs["t"].dtype == torch.float32
    assert kwargs["p"] == Point(x=1, y=2)
    assert kwargs["tags"] == ["a"] and kwargs["text"] == "hi"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"arr": [[1, 2], [3]], "p": {"x": 1, "y": 2}}, "arr"),
        ({"arr": [["a"]], "p": {"x": 1, "y": 2}}, "arr"),
        ({"arr": [1], "p": {"x": "nope", "y": 2}}, "p.x"),
        ({"arr": [1]}, "p"),
        ({"arr": [1], "p": {"x": 1, "y": 2}, "extra": 1}, "extra"),
        ({"arr": 5, "p": {"x": 1, "y": 2}}, "arr"),
        ({"arr": [1], "p": {"x": False, "y": 2}}, "p.x"),
        ({"arr": [1], "p": {"x": "1.5", "y": 2}}, "p.x"),
    ],
)
def test_invalid_input_names_the_field(payload, field):
    def f(arr: np.ndarray, p: Point) -> int:
        return 0

    with pytest.raises(InvalidInput) as caught:
        APIMethod.from_function(f).decode(orjson.dumps(payload))
    assert caught.value.field == field


def test_generators_are_streams_whose_items_are_typed_by_the_return_hint():
    def tokens(prompt: str) -> Generator[str, None, None]:
        yield prompt

    async def points(n: int) -> AsyncIterator[Point]:
        yield Point(x=n, y=n)

    def untyped(n: int):
        yield n

    stream, async_stream, plain = (APIMethod.from_function(f) for f in (tokens, points, untyped))
    assert stream.is_stream and not stream.is_async
    assert stream.output.json_schema() == {"type": "string"}
    assert async_stream.is_stream and async_stream.is_async
    assert async_stream.output.encode(Point(x=1, y=2)) == {"x": 1.0, "y": 2.0}
    assert plain.is_stream and plain.output.json_schema() == {}
    assert not APIMethod.from_function(lambda n: n).is_stream


def test_a_generator_cannot_be_batchable_or_a_task():
    @api(batchable=True)
    def batched(inputs: np.ndarray):
        yield inputs

    @api(task=True)
    def job(n: int):
        yield n

    with pytest.raises(ServiceDefinitionError, match="batchable API must be a plain"):
        APIMethod.from_function(batched)
    with pytest.raises(ServiceDefinitionError, match="task returns one result"):
        APIMethod.from_function(job)
