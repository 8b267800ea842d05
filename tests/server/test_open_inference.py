"""Open Inference Protocol v2 routes on a real server: probes, metadata, infer, and refusals by field."""

from __future__ import annotations

import numpy as np
import pytest
import requests
import torch

from bento_jupyter import api


@api(batchable=True, max_batch_size=8)
def predict(inputs: np.ndarray) -> np.ndarray:
    return inputs.sum(axis=1)


@api(batchable=True)
def classify(texts: list[str]) -> list[int]:
    return [int("spam" in t) for t in texts]


def describe(text: str) -> dict:
    return {"length": len(text)}


def scale(x: torch.Tensor, factor: float = 2.0) -> torch.Tensor:
    return x * factor


@pytest.fixture
def url(serve) -> str:
    return serve("oip", predict, classify, describe, scale).url


def infer(url: str, model: str, *inputs: dict, **extra) -> requests.Response:
    return requests.post(f"{url}/v2/models/{model}/infer", json={"inputs": list(inputs), **extra}, timeout=10)


def test_health_and_server_metadata(url):
    assert requests.get(f"{url}/v2/health/live", timeout=5).json() == {"live": True}
    assert requests.get(f"{url}/v2/health/ready", timeout=5).json() == {"ready": True}
    assert requests.get(f"{url}/v2", timeout=5).json()["name"] == "oip"


def test_each_api_is_a_model_with_metadata_and_readiness(url):
    meta = requests.get(f"{url}/v2/models/predict", timeout=5).json()
    assert meta["name"] == "predict" and [i["name"] for i in meta["inputs"]] == ["inputs"]
    assert requests.get(f"{url}/v2/models/scale", timeout=5).json()["inputs"][1]["datatype"] == "FP64"
    assert requests.get(f"{url}/v2/models/describe/ready", timeout=5).json() == {"name": "describe", "ready": True}
    missing = requests.get(f"{url}/v2/models/nope/ready", timeout=5)
    assert missing.status_code == 404 and "nope" in missing.json()["error"]


def test_infer_takes_v2_tensors_and_answers_v2_outputs(url):
    answer = infer(
        url, "predict", {"name": "inputs", "shape": [2, 3], "datatype": "FP32", "data": [1, 2, 3, 4, 5, 6]}, id="r1"
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model_name"] == "predict" and body["id"] == "r1"
    (output,) = body["outputs"]
    assert output["shape"] == [2] and output["data"] == [6.0, 15.0] and output["datatype"] in ("FP32", "FP64")


def test_infer_with_bytes_for_str_and_list_of_str(url):
    texts = infer(url, "classify", {"name": "texts", "shape": [2], "datatype": "BYTES", "data": ["spam!", "hello"]})
    assert texts.json()["outputs"][0] == {"name": "output", "datatype": "INT64", "shape": [2], "data": [1, 0]}
    one = infer(url, "describe", {"name": "text", "shape": [1], "datatype": "BYTES", "data": ["bento"]})
    assert one.status_code == 200 and one.json()["outputs"][0]["data"] == ['{"length":5}']


def test_infer_with_a_torch_input_and_an_optional_parameter(url):
    answer = infer(url, "scale", {"name": "x", "shape": [2], "datatype": "FP32", "data": [1.5, 2.0]})
    assert answer.json()["outputs"][0]["data"] == [3.0, 4.0]


@pytest.mark.parametrize(
    ("model", "tensor", "field"),
    [
        ("predict", {"name": "inputs", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 3]}, "inputs"),
        ("predict", {"name": "inputs", "shape": [1, 1], "datatype": "BYTES", "data": ["a"]}, "inputs"),
        ("predict", {"name": "inputz", "shape": [1], "datatype": "FP32", "data": [1]}, "inputz"),
        ("describe", {"name": "text", "shape": [2], "datatype": "BYTES", "data": ["a", "b"]}, "text"),
        ("describe", {"name": "text", "shape": [1], "datatype": "BYTES", "data": [3]}, "text"),
        ("predict", {"name": "inputs", "shape": "2", "datatype": "FP32", "data": [1, 2]}, "inputs"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(url, model, tensor, field):
    answer = infer(url, model, tensor)
    assert answer.status_code == 400, answer.text
    assert answer.json()["field"] == field and answer.json()["error"]


def test_a_body_without_inputs_is_refused(url):
    answer = requests.post(f"{url}/v2/models/predict/infer", json={"data": []}, timeout=5)
    assert answer.status_code == 400 and answer.json()["field"] == "inputs"
    assert infer(url, "nope", {"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}).status_code == 404
