"""tritonclient at its defaults (binary tensor data in and out) against our /v2 routes: every datatype survives."""

from __future__ import annotations

import json
from typing import Annotated

import numpy as np
import pytest
import requests
import torch
import tritonclient.http as triton
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

from bento_jupyter import DType, api
from tests.server.v2_echo_handlers import SEEN, seen, single, single_torch


@api(batchable=True, max_batch_size=64)
def batched(x: np.ndarray) -> np.ndarray:
    seen(x)
    return x


def bf16_torch(x: Annotated[torch.Tensor, DType("bfloat16")]) -> Annotated[torch.Tensor, DType("bfloat16")]:
    seen(x)
    return x * 2


@api(batchable=True, max_batch_size=8)
def lengths(texts: list[str]) -> list[int]:
    return [len(t) for t in texts]


def shout(text: str) -> str:
    return text.upper()


def pair(a: np.ndarray, b: list[str]) -> dict:
    return {"sum": float(a.sum()), "texts": b}


@pytest.fixture(scope="module")
def server():
    from bento_jupyter.server.app import ServiceApp
    from bento_jupyter.server.runner import ThreadedServer
    from bento_jupyter.service.definition import ServiceDefinition

    funcs = (batched, single, single_torch, bf16_torch, lengths, shout, pair)
    running = ThreadedServer(ServiceApp(ServiceDefinition.from_functions("binary", funcs)), "127.0.0.1", None)
    running.start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def client(server):
    with triton.InferenceServerClient(url=server.url.removeprefix("http://")) as connection:
        yield connection


def infer(client, model: str, array: np.ndarray, name: str = "x", **options) -> triton.InferResult:
    """tritonclient's defaults: binary input data, no outputs named (so every output comes as binary data)."""
    tensor = triton.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
    tensor.set_data_from_numpy(array)
    return client.infer(model, [tensor], **options)


NUMERIC = ["float32", "float16", "float64", "int8", "int32", "int64", "uint8", "bool"]
shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    model=st.sampled_from(["batched", "single", "single_torch"]),
    array=st.sampled_from(NUMERIC).flatmap(lambda dtype: hnp.arrays(dtype, shapes)),
)
def test_binary_tensors_of_every_datatype_reach_the_handler_and_come_back_exactly(client, model, array):
    SEEN.clear()
    result = infer(client, model, array)
    assert [(str(array.dtype), array.shape)] == SEEN
    output = result.get_output("output")
    assert output["datatype"] == np_to_triton_dtype(array.dtype)
    assert "binary_data_size" in output["parameters"] and "data" not in output
    got = result.as_numpy("output")
    assert got.dtype == array.dtype and got.shape == array.shape
    assert got.tobytes() == array.tobytes()  # bit for bit: NaN payloads, -0.0 and subnormals included


@pytest.mark.parametrize("binary_in", [True, False])
@pytest.mark.parametrize("binary_out", [True, False])
def test_binary_and_json_mix_in_either_direction(client, binary_in, binary_out):
    array = np.array([[1.5, -2.0], [0.25, 8.0]], np.float32)
    tensor = triton.InferInput("x", list(array.shape), "FP32")
    tensor.set_data_from_numpy(array, binary_data=binary_in)
    outputs = [triton.InferRequestedOutput("output", binary_data=binary_out)]
    result = client.infer("single", [tensor], outputs=outputs)
    assert ("parameters" in result.get_output("output")) is binary_out
    assert np.array_equal(result.as_numpy("output"), array)


def test_bytes_as_binary_for_a_list_of_str_and_a_str(client):
    texts = np.array([b"spam", "héllo wörld 🤖".encode(), b""], dtype=np.object_)
    assert infer(client, "lengths", texts, name="texts").as_numpy("output").tolist() == [4, 13, 0]
    shouted = infer(client, "shout", np.array(["bentō".encode()], dtype=np.object_), name="text")
    assert shouted.get_output("output")["datatype"] == "BYTES"
    assert shouted.as_numpy("output").tolist() == ["BENTŌ".encode()]


def test_binary_and_json_inputs_in_one_request(client):
    a = triton.InferInput("a", [3], "INT32")
    a.set_data_from_numpy(np.array([1, 2, 3], np.int32))
    b = triton.InferInput("b", [2], "BYTES")
    b.set_data_from_numpy(np.array([b"x", b"yz"], dtype=np.object_), binary_data=False)
    answer = client.infer("pair", [a, b]).as_numpy("output")
    assert json.loads(answer[0]) == {"sum": 6.0, "texts": ["x", "yz"]}


def test_bfloat16_in_and_out_with_ml_dtypes(client):
    ml_dtypes = pytest.importorskip("ml_dtypes")  # tritonclient's own BF16 type
    array = np.array([[1.5, -2.0, 3.0e38, 0.0078125]], ml_dtypes.bfloat16)
    SEEN.clear()
    result = infer(client, "bf16_torch", array)
    assert SEEN == [("bfloat16", (1, 4))]
    assert result.get_output("output")["datatype"] == "BF16"
    got = result.as_numpy("output")
    expected = (torch.tensor(array.astype(np.float32)).to(torch.bfloat16) * 2).float().numpy()
    assert np.array_equal(got.astype(np.float32), expected, equal_nan=True)


def test_server_metadata_advertises_binary_tensor_data(client):
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]


def _post(server, model: str, header: dict, raw: bytes, length: str | None = None) -> requests.Response:
    body = json.dumps(header).encode()
    headers = {"Inference-Header-Content-Length": length if length is not None else str(len(body))}
    return requests.post(f"{server.url}/v2/models/{model}/infer", data=body + raw, headers=headers, timeout=10)


def _tensor(name: str, datatype: str, shape: list[int], size: int) -> dict:
    return {"name": name, "datatype": datatype, "shape": shape, "parameters": {"binary_data_size": size}}


@pytest.mark.parametrize(
    ("model", "tensor", "raw", "field"),
    [
        ("single", _tensor("x", "FP32", [2], 8), b"\0" * 4, "x"),  # shorter than its size
        ("single", _tensor("x", "FP32", [3], 8), b"\0" * 8, "x"),  # size disagrees with the shape
        ("single", _tensor("x", "FP32", [2], 8), b"\0" * 12, "inputs"),  # bytes left over
        ("single", _tensor("x", "BOOL", [2], 2), b"\x01\x07", "x"),  # a BOOL byte neither 0 nor 1
        ("single", _tensor("x", "FP32", [2], -1), b"", "x"),
        ("lengths", _tensor("texts", "BYTES", [1], 6), b"\x09\0\0\0ab", "texts"),  # element past the data
        ("lengths", _tensor("texts", "BYTES", [1], 2), b"\x09\0", "texts"),  # ends inside a length
        ("lengths", _tensor("texts", "BYTES", [1], 6), b"\x02\0\0\0\xff\xfe", "texts"),  # not UTF-8
        ("lengths", _tensor("texts", "BYTES", [2], 5), b"\x01\0\0\0a", "texts"),  # fewer elements than shape
    ],
)
def test_malformed_binary_bodies_are_refused_naming_the_input(server, model, tensor, raw, field):
    answer = _post(server, model, {"inputs": [tensor]}, raw)
    assert answer.status_code == 400, answer.text
    assert answer.json()["field"] == field


@pytest.mark.parametrize("length", ["-1", "abc", "100000"])
def test_a_header_length_outside_the_body_is_refused(server, length):
    answer = _post(server, "single", {"inputs": [_tensor("x", "FP32", [1], 4)]}, b"\0" * 4, length)
    assert answer.status_code == 400 and answer.json()["field"] == "Inference-Header-Content-Length"


def test_an_output_the_model_lacks_is_refused_by_name(client):
    tensor = triton.InferInput("x", [1], "FP32")
    tensor.set_data_from_numpy(np.ones(1, np.float32))
    with pytest.raises(InferenceServerException, match="unexpected output"):
        client.infer("single", [tensor], outputs=[triton.InferRequestedOutput("scores")])
