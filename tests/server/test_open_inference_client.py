"""tritonclient, a real Open Inference Protocol v2 client, against our /v2 routes: datatypes survive both ways."""

from __future__ import annotations

import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import np_to_triton_dtype

from bento_jupyter import api
from tests.server.v2_echo_handlers import SEEN, seen, single, single_torch


@api(batchable=True, max_batch_size=8)
def batched(x: np.ndarray) -> np.ndarray:
    seen(x)
    return x


@api(batchable=True, max_batch_size=8)
def lengths(texts: list[str]) -> list[int]:
    return [len(t) for t in texts]


def shout(text: str) -> str:
    return text.upper()


def half(x: float) -> float:
    return x / 2


@pytest.fixture
def client(serve):
    server = serve("triton", batched, single, single_torch, lengths, shout, half)
    with triton.InferenceServerClient(url=server.url.removeprefix("http://")) as connection:
        yield connection


def infer(client, model: str, array: np.ndarray, name: str = "x") -> triton.InferResult:
    tensor = triton.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
    tensor.set_data_from_numpy(array, binary_data=False)
    return client.infer(model, [tensor], outputs=[triton.InferRequestedOutput("output", binary_data=False)])


DATA = {
    "float32": np.array([[0.1, -2.5], [3.25, 1e-3]], np.float32),
    "float16": np.array([[0.5, -1.5, 65504.0]], np.float16),
    "int32": np.array([[1, -2], [2**31 - 1, -(2**31)]], np.int32),
    "int64": np.array([[2**63 - 1], [-(2**63)]], np.int64),
    "bool": np.array([[True, False, True]]),
}


@pytest.mark.parametrize("model", ["batched", "single", "single_torch"])
@pytest.mark.parametrize("dtype", list(DATA))
def test_numeric_datatypes_reach_the_handler_and_come_back_as_declared(client, model, dtype):
    array = DATA[dtype]
    SEEN.clear()
    result = infer(client, model, array)
    assert [(dtype, array.shape)] == SEEN
    output = result.get_output("output")
    assert output["datatype"] == np_to_triton_dtype(array.dtype)
    got = result.as_numpy("output")
    assert got.dtype == array.dtype and np.array_equal(got, array)
    metadata = client.get_model_metadata(model)
    assert metadata["outputs"][0]["datatype"] == output["datatype"]  # as last produced


def test_bytes_for_a_list_of_str_batched_and_a_str(client):
    texts = np.array([b"spam", b"hello world"], dtype=np.object_)
    result = infer(client, "lengths", texts, name="texts")
    assert result.get_output("output")["datatype"] == "INT64"
    assert result.as_numpy("output").tolist() == [4, 11]
    shouted = infer(client, "shout", np.array([b"bento"], dtype=np.object_), name="text")
    assert shouted.as_numpy("output").tolist() == ["BENTO"]  # JSON BYTES come back as str


def test_metadata_declares_what_infer_answers_before_any_call(client):
    metadata = client.get_model_metadata("half")
    assert metadata["inputs"] == [{"name": "x", "datatype": "FP64", "shape": [1]}]  # one element, as infer takes
    declared = metadata["outputs"][0]["datatype"]
    result = infer(client, "half", np.array([3.0]))
    assert result.get_output("output")["datatype"] == declared == "FP64"
    assert result.as_numpy("output").tolist() == 1.5  # a scalar: shape []


def test_server_and_models_are_live_and_ready(client):
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("batched")
    assert not client.is_model_ready("nope")
