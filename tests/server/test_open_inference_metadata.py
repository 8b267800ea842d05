"""v2 model metadata never contradicts infer: tritonclient's get_model_metadata against the outputs it gets."""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
import pytest
import tritonclient.http as triton

from bento_jupyter import DType, Shape, api


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


def agrees(metadata: dict, output: dict, declared: bool) -> bool:
    """Every field metadata gives holds for the output (-1: any size); an empty answer of an undeclared datatype
    is JSON's ``[]`` (FP64 ``[0]``), whose datatype and rank say nothing."""
    if not declared and 0 in output["shape"]:
        return True
    if "datatype" in metadata and metadata["datatype"] != output["datatype"]:
        return False
    shape = metadata.get("shape")
    return shape is None or (
        len(shape) == len(output["shape"]) and all(d in (-1, n) for d, n in zip(shape, output["shape"], strict=True))
    )


@pytest.mark.parametrize("model", list(MODELS))
def test_metadata_says_only_what_infer_answers_before_and_after_calls(client, model):
    (before,) = client.get_model_metadata(model)["outputs"]
    outputs = [infer(client, model, n) for n in (0, 1, 3)]
    (after,) = client.get_model_metadata(model)["outputs"]
    for output in outputs:
        assert agrees(before, output, "datatype" in before), (before, output)
        assert agrees(after, output, "datatype" in before), (after, output)
    assert after.get("datatype") == outputs[-1]["datatype"]  # known once it has answered


def test_declared_outputs_are_in_metadata_before_any_call(client):
    outputs = {m: client.get_model_metadata(m)["outputs"][0] for m in ("pairs", "ratio", "grid", "label", "record")}
    assert outputs["pairs"] == {"name": "output", "datatype": "FP32", "shape": [-1, 2]}
    assert outputs["ratio"] == {"name": "output", "datatype": "FP64", "shape": []}
    assert outputs["grid"] == {"name": "output", "datatype": "INT64", "shape": [-1, -1]}
    assert outputs["label"] == {"name": "output", "datatype": "BYTES", "shape": [1]}
    assert outputs["record"] == {"name": "output", "datatype": "BYTES", "shape": [1]}
    assert client.get_model_metadata("flags")["outputs"][0] == {"name": "output"}  # nothing declared yet
