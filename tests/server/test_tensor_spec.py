"""A tensor parameter's declared Shape and DType (BentoML's names) hold on every route and in every document."""

from __future__ import annotations

from typing import Annotated

import numpy as np
import pytest
import requests
import torch

from bento_jupyter import DType, Shape, api
from bento_jupyter.errors import ServiceDefinitionError
from bento_jupyter.service.definition import APIMethod

SEEN: list[tuple[str, tuple[int, ...]]] = []


def scale(x: Annotated[np.ndarray, Shape((-1, 3)), DType("float32")]) -> np.ndarray:
    SEEN.append((str(x.dtype), x.shape))
    return x * 2


@api(batchable=True, max_batch_size=8)
def total(rows: Annotated[torch.Tensor, Shape((-1, 2)), DType("int16")]) -> torch.Tensor:
    SEEN.append((str(rows.dtype), tuple(rows.shape)))
    return rows.sum(dim=1)


def test_a_declared_shape_and_dtype_are_what_the_handler_gets_or_a_400_names_the_field(serve):
    url = serve("spec", scale, total).url
    SEEN.clear()
    answer = requests.post(f"{url}/scale", json={"x": [[1, 2, 3], [0.5, 0.25, 4]]}, timeout=10)
    assert answer.status_code == 200 and answer.json() == [[2, 4, 6], [1, 0.5, 8]]
    answer = requests.post(f"{url}/total", json={"rows": [[1, 2], [30.0, 40]]}, timeout=10)
    assert answer.status_code == 200 and answer.json() == [3, 70]
    assert SEEN == [("float32", (2, 3)), ("torch.int16", (2, 2))]
    refused = {
        "/scale": [{"x": [[1, 2]]}, {"x": [1, 2, 3]}, {"x": [[1, 2, 3e39]]}, {"x": [[True, False, True]]}],
        "/total": [{"rows": [[1, 2, 3]]}, {"rows": [[1.5, 2]]}, {"rows": [[1, 40000]]}],
    }
    for route, bodies in refused.items():
        for body in bodies:
            answer = requests.post(f"{url}{route}", json=body, timeout=10)
            assert answer.status_code == 400 and answer.json()["field"] == next(iter(body)), (body, answer.text)
    assert requests.post(f"{url}/total", json={"rows": []}, timeout=10).json() == []  # no item: no call
    assert len(SEEN) == 2  # nothing refused reached a handler


def test_documents_say_what_is_declared(serve):
    url = serve("spec", scale, total).url
    routes = {r["name"]: r for r in requests.get(f"{url}/schema.json", timeout=5).json()["routes"]}
    assert routes["scale"]["input"]["properties"]["x"] | {"title": ""} == {
        "title": "",
        "type": "tensor",
        "format": "numpy-array",
        "dtype": "float32",
        "shape": [-1, 3],
    }
    doc = requests.get(f"{url}/docs.json", timeout=5).json()
    body = doc["paths"]["/total"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    rows = body["properties"]["rows"]
    assert rows["type"] == "array" and "minItems" not in rows  # -1: any number of rows
    assert rows["items"]["minItems"] == rows["items"]["maxItems"] == 2
    assert rows["items"]["items"] == {"type": "integer", "minimum": -32768, "maximum": 32767}
    metadata = requests.get(f"{url}/v2/models/total", timeout=5).json()
    assert metadata["inputs"] == [{"name": "rows", "datatype": "INT16", "shape": [-1, 2]}]


def test_a_v2_request_of_another_datatype_reaches_the_handler_in_the_declared_one(serve):
    url = serve("spec", scale).url
    SEEN.clear()
    tensor = {"name": "x", "datatype": "FP64", "shape": [1, 3], "data": [1.0, 2.0, 3.0]}
    answer = requests.post(f"{url}/v2/models/scale/infer", json={"inputs": [tensor]}, timeout=10)
    assert answer.status_code == 200, answer.text
    assert SEEN == [("float32", (1, 3))]


@pytest.mark.parametrize("metadata", [Shape((2.5,)), Shape((-2, 3)), DType("str"), DType("complex64"), DType("nope")])
def test_an_impossible_declaration_is_refused_when_the_service_is_defined(metadata):
    def bad(x):
        return x

    bad.__annotations__ = {"x": Annotated[np.ndarray, metadata], "return": np.ndarray}  # resolved, not a string
    with pytest.raises(ServiceDefinitionError, match=r"shape|dtype|bool"):
        APIMethod.from_function(bad)
