"""v2 model metadata never contradicts infer: tritonclient's get_model_metadata against the outputs it gets."""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
import pytest
import requests
import tritonclient.http as triton
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bento_jupyter import DType, Shape, api
from tests.server.test_tasks import wait_for


def flags(n: int):
    return np.arange(n) % 2 == 0


def pixels(n: int):
    return np.arange(n, dtype=np.uint8)


def counts(n: int) -> np.ndarray:
    return np.arange(n, dtype=np.int32)


@api(batchable=True, max_batch_size=8)
def halves(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float16) / 2


def pairs(n: int) -> Annotated[np.ndarray, Shape((-1, 2)), DType("float32")]:
    return np.ones((n, 2), np.float32)


def ratio(n: int) -> float:
    return n / 2


def grid(n: int) -> list[list[int]]:
    return [[i, i] for i in range(n)]


def ids(n: int) -> list[int]:
    return list(range(n))


def label(n: int) -> str:
    return "x" * n


def record(n: int) -> dict:
    return {"n": n}


def anything(n: int) -> Any:
    return [True] * n


MODELS = {
    "flags": "n",
    "pixels": "n",
    "counts": "n",
    "halves": "x",
    "pairs": "n",
    "ratio": "n",
    "grid": "n",
    "ids": "n",
    "label": "n",
    "record": "n",
    "anything": "n",
}


@pytest.fixture
def client(serve):
    funcs = (flags, pixels, counts, halves, pairs, ratio, grid, ids, label, record, anything)
    server = serve("meta", *funcs)
    with triton.InferenceServerClient(url=server.url.removeprefix("http://")) as connection:
        yield connection


def infer(client, model: str, n: int) -> dict:
    array = np.full((n, 1) if model == "halves" else (1,), n if model != "halves" else 3, np.int64)
    tensor = triton.InferInput(MODELS[model], list(array.shape), "INT64")
    tensor.set_data_from_numpy(array)
    return client.infer(model, [tensor]).get_output("output")


def agrees(metadata: dict, output: dict) -> bool:
    """The output has the datatype metadata gives, and its shape (-1: any size; any rank where it says so)."""
    if metadata["datatype"] != output["datatype"]:
        return False
    shape = metadata["shape"]
    if metadata.get("parameters", {}).get("unknown_rank"):
        return 1 <= len(output["shape"]) <= metadata["parameters"]["max_rank"]
    return len(shape) == len(output["shape"]) and all(d in (-1, n) for d, n in zip(shape, output["shape"], strict=True))


@pytest.mark.parametrize("model", list(MODELS))
def test_metadata_always_gives_a_datatype_and_shape_that_infer_keeps_once_known(client, model):
    """KServe's metadata has both for every tensor; what the hint declares holds from the start, what it leaves
    open from the first answer on (empty answers included: they take the metadata's datatype and rank)."""
    (before,) = client.get_model_metadata(model)["outputs"]
    assert {"name", "datatype", "shape"} <= before.keys()
    declared = "parameters" not in before
    first = infer(client, model, 1)
    assert agrees(before, first) or not declared, (before, first)
    (known,) = client.get_model_metadata(model)["outputs"]
    for n in (0, 1, 3):
        output = infer(client, model, n)
        assert agrees(known, output), (known, output)
        assert client.get_model_metadata(model)["outputs"][0] == known


def test_declared_outputs_are_in_metadata_before_any_call(client):
    outputs = {m: client.get_model_metadata(m)["outputs"][0] for m in ("pairs", "ratio", "grid", "label", "record")}
    assert outputs["pairs"] == {"name": "output", "datatype": "FP32", "shape": [-1, 2]}
    assert outputs["ratio"] == {"name": "output", "datatype": "FP64", "shape": []}
    assert outputs["grid"] == {"name": "output", "datatype": "INT64", "shape": [-1, -1]}
    assert outputs["label"] == {"name": "output", "datatype": "BYTES", "shape": [1]}
    assert outputs["record"] == {"name": "output", "datatype": "BYTES", "shape": [1]}
    any_rank = {"shape": [-1], "parameters": {"unknown_rank": True, "max_rank": 8}}
    # nothing declared, nothing answered yet: a tensor's stated default is FP32, anything else's BYTES, any rank
    assert client.get_model_metadata("halves")["outputs"][0] == {"name": "output", "datatype": "FP32", **any_rank}
    assert client.get_model_metadata("flags")["outputs"][0] == {"name": "output", "datatype": "BYTES", **any_rank}


@api(batchable=True, max_batch_size=8)
def row_sums(rows: Annotated[np.ndarray, Shape((-1, 2)), DType("float32")]) -> np.ndarray:
    return rows.sum(1)


@api(batchable=True, max_batch_size=8)
def widen(rows: Annotated[np.ndarray, DType("int8")]) -> np.ndarray:
    return np.repeat(rows.astype(np.float16)[:, :1], 3, axis=1)


def small(x: Annotated[np.ndarray, DType("int8")]) -> np.ndarray:
    return x


def echo(x: np.ndarray) -> np.ndarray:
    return x


@pytest.fixture
def tensors(serve):
    server = serve("ranks", row_sums, widen, small, echo)
    with triton.InferenceServerClient(url=server.url.removeprefix("http://")) as connection:
        yield connection


def infer_array(client, model: str, array: np.ndarray, datatype: str) -> dict:
    tensor = triton.InferInput("rows" if model in ("row_sums", "widen") else "x", list(array.shape), datatype)
    tensor.set_data_from_numpy(array)
    return client.infer(model, [tensor]).get_response()["outputs"][0]


def test_an_empty_batch_keeps_the_datatype_and_shape_metadata_gives(tensors):
    (before,) = tensors.get_model_metadata("row_sums")["outputs"]
    empty = infer_array(tensors, "row_sums", np.zeros((0, 2), np.float32), "FP32")
    assert (empty["datatype"], empty["shape"]) == (before["datatype"], [0]) == ("FP32", [0])
    assert infer_array(tensors, "row_sums", np.ones((2, 2), np.float32), "FP32")["datatype"] == "FP32"
    # once it has answered, an empty batch is its datatype, the batch dimension 0 and the other sizes as answered
    assert infer_array(tensors, "widen", np.ones((2, 5), np.int8), "INT8")["shape"] == [2, 3]
    empty = infer_array(tensors, "widen", np.zeros((0, 5), np.int8), "INT8")
    assert (empty["datatype"], empty["shape"]) == ("FP16", [0, 3])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rank=st.integers(1, 10), model=st.sampled_from(["small", "echo"]))
def test_a_tensor_of_undeclared_shape_takes_exactly_the_ranks_its_metadata_gives(tensors, rank, model):
    (metadata,) = tensors.get_model_metadata(model)["inputs"]
    assert metadata["shape"] == [-1] and metadata["parameters"]["unknown_rank"] is True
    assert metadata["datatype"] == ("INT8" if model == "small" else "FP32")
    array = np.ones((1,) * rank, np.int8)
    tensor = triton.InferInput("x", list(array.shape), "INT8")
    tensor.set_data_from_numpy(array)
    try:
        answer = tensors.infer(model, [tensor]).get_response()["outputs"][0]
    except triton.InferenceServerException as refused:
        assert rank > metadata["parameters"]["max_rank"], refused
        assert "dimensions" in str(refused)
    else:
        assert rank <= metadata["parameters"]["max_rank"] and answer["shape"] == [1] * rank


def r8(n: int) -> np.ndarray:
    return np.ones((1, 3), np.int8) * n


@api(task=True)
def cube16(n: int) -> np.ndarray:
    return np.zeros((n, 2, 2), np.float16)


def test_metadata_learns_from_any_answer_of_the_api_and_keeps_its_rank_unpromised(serve, tmp_path):
    """An answer of the API's own JSON route, or of a task, teaches its open output's datatype and rank as a v2
    infer does; the shape its hint leaves open stays ``unknown_rank`` (the next answer may have another rank)."""
    server = serve("learn", r8, cube16, task_home=tmp_path)
    any_rank = {"unknown_rank": True, "max_rank": 8}
    with triton.InferenceServerClient(url=server.url.removeprefix("http://")) as client:
        assert requests.post(f"{server.url}/r8", json={"n": 2}, timeout=10).json() == [[2, 2, 2]]
        assert client.get_model_metadata("r8")["outputs"] == [
            {"name": "output", "datatype": "INT8", "shape": [-1, -1], "parameters": any_rank}
        ]
        task_id = requests.post(f"{server.url}/cube16/submit", json={"n": 1}, timeout=10).json()["task_id"]
        wait_for(f"{server.url}/cube16", task_id, "completed")
        assert client.get_model_metadata("cube16")["outputs"] == [
            {"name": "output", "datatype": "FP16", "shape": [-1, -1, -1], "parameters": any_rank}
        ]
        tensor = triton.InferInput("n", [1], "INT64")
        tensor.set_data_from_numpy(np.array([3], np.int64))
        assert client.infer("r8", [tensor]).as_numpy("output").tolist() == [[3, 3, 3]]
        assert client.get_model_metadata("r8")["outputs"][0]["parameters"] == any_rank
