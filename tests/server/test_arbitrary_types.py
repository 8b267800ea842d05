"""Types pydantic takes with ``arbitrary_types_allowed`` (np.ndarray, torch.Tensor, a user's class) in a result at
any depth are served and documented; in a parameter, where no JSON can hold one, the service refuses to start
naming the API and the field."""

from __future__ import annotations

import json

import numpy as np
import pytest
import requests
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from openapi_spec_validator import validate
from pydantic import BaseModel, ConfigDict

from bento_jupyter.errors import ServiceDefinitionError
from bento_jupyter.service.definition import ServiceDefinition

DTYPES = ["float16", "float32", "float64", "int8", "int32", "int64", "uint8", "bool"]


class Note:
    """A user's own class, which pydantic knows only by isinstance."""


class Prediction(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)
    scores: np.ndarray
    logits: torch.Tensor
    note: Note | None = None


class Batch(BaseModel):
    items: list[Prediction]


def predict(data: list, dtype: str) -> Prediction:
    array = np.asarray(data, dtype=dtype)
    return Prediction(scores=array, logits=torch.from_numpy(array))


def batch(data: list, dtype: str) -> Batch:
    return Batch(items=[predict(data, dtype)])


def as_array(data: list, dtype: str) -> np.ndarray:
    return np.asarray(data, dtype=dtype)


def as_tensor(data: list, dtype: str) -> torch.Tensor:
    return torch.from_numpy(np.asarray(data, dtype=dtype))


@pytest.fixture
def url(serve) -> str:
    return serve("arb", predict, batch, as_array, as_tensor).url


def post(url: str, route: str, array: np.ndarray) -> requests.Response:
    body = {"data": array.tolist(), "dtype": str(array.dtype)}
    return requests.post(f"{url}/{route}", data=json.dumps(body), timeout=10)


arrays = st.sampled_from(DTYPES).flatmap(
    lambda dtype: hnp.arrays(dtype, hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=4))
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(array=arrays)
def test_tensors_inside_a_returned_model_at_any_depth_are_written_as_a_tensor_result_is(url, array):
    alone = post(url, "as_array", array)
    one, nested = post(url, "predict", array), post(url, "batch", array)
    assert alone.status_code == one.status_code == nested.status_code == 200, (one.text, nested.text)
    expected = alone.json()
    assert one.json() == {"scores": expected, "logits": expected, "note": None}
    assert nested.json() == {"items": [one.json()]}


def test_the_documents_describe_a_tensor_field_as_a_tensor_result_and_validate(url):
    document = requests.get(f"{url}/docs.json", timeout=5).json()
    validate(document)
    fields = document["components"]["schemas"]["Prediction"]["properties"]

    def result(route: str) -> dict:
        return document["paths"][route]["post"]["responses"]["200"]["content"]["application/json"]["schema"]

    assert fields["scores"].items() >= result("/as_array").items()
    assert fields["logits"].items() >= result("/as_tensor").items()
    assert {"type": "null"} in fields["note"]["anyOf"]  # the user's class: any JSON value, or null
    assert requests.get(f"{url}/schema.json", timeout=5).status_code == 200


def learn(prediction: Prediction) -> int:
    return 0


def learn_all(batch: Batch) -> int:
    return 0


@pytest.mark.parametrize("func", [learn, learn_all])
def test_a_parameter_holding_an_arbitrary_type_is_refused_naming_the_api_and_field(func):
    with pytest.raises(ServiceDefinitionError) as refused:
        ServiceDefinition.from_functions("arb", [func])
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(f"{func.__name__}(): parameter ") and "field Prediction.scores is a ndarray" in message
