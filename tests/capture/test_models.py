"""Which variables the sidebar offers as models, and their sizes: cheap, bounded, never pickled."""

from __future__ import annotations

import sys

import numpy as np
import torch

from bento_jupyter.capture.models import MAX_WALK_NODES, describe_models, footprint, model_kind


class Estimator:
    def __init__(self) -> None:
        self.coef = np.zeros((10, 10))

    def fit(self, x):
        return self

    def predict(self, x):
        return x


class Wrapper:
    """A predictor holding a torch module and a tensor: its size and device come from them."""

    def __init__(self) -> None:
        self.net = torch.nn.Linear(10, 10)  # 110 float32
        self.table = torch.zeros(25, dtype=torch.float64)

    def predict(self, x):
        return self.net(x)


class Anything:
    """Answers every attribute, predict included: must not count as a model."""

    def __getattr__(self, name):
        return lambda *args: None


class Hostile:
    """No __dict__, and a __getattr__ that raises: sizing must carry on."""

    __slots__ = ()

    def predict(self, x):
        return x

    def __getattr__(self, name):
        raise RuntimeError(f"no {name}")


class Unpicklable:
    def predict(self, x):
        return x

    def __reduce__(self):
        raise AssertionError("sizing must not pickle")


def test_models_are_torch_modules_estimators_and_predictors_only():
    assert model_kind(torch.nn.Linear(2, 2)) == "torch"
    assert model_kind(Estimator()) == "estimator"
    assert model_kind(Wrapper()) == "predictor"
    for not_a_model in (Estimator, np, len, lambda x: x, Anything(), {"predict": 1}, np.zeros(3)):
        assert model_kind(not_a_model) is None, not_a_model


def test_sizes_count_array_and_tensor_bytes_once_and_take_the_device_from_tensors():
    size, device, exact = footprint(Estimator())
    assert 800 <= size < 800 + 4096 and (device, exact) == ("cpu", False)
    size, device, exact = footprint(Wrapper())
    assert 110 * 4 + 25 * 8 <= size < 110 * 4 + 25 * 8 + 4096 and device == "cpu"
    shared = Estimator()
    shared.again = shared.coef  # the same array under two names is counted once
    assert footprint(shared)[0] == footprint(Estimator())[0]
    assert footprint(torch.nn.Linear(10, 10)) == (110 * 4, "cpu", True)


def test_sizing_a_huge_object_stops_after_a_bounded_walk_and_never_pickles():
    huge = Unpicklable()  # pickling it raises: footprint must not try
    huge.rows = [[i] for i in range(200_000)]
    full = sys.getsizeof(huge.rows) + sum(sys.getsizeof(row) + sys.getsizeof(row[0]) for row in huge.rows)
    size, _, exact = footprint(huge)
    assert not exact
    assert sys.getsizeof(huge.rows) < size < sys.getsizeof(huge.rows) + MAX_WALK_NODES * 200 < full / 2


def test_an_object_whose_getattr_raises_is_still_listed_and_sized():
    (entry,) = describe_models({"odd": Hostile()})
    assert (entry["kind"], entry["type"]) == ("predictor", f"{__name__}.Hostile")
    assert entry["size_bytes"] > 0


def test_describe_models_lists_model_variables_by_name():
    found = describe_models({"b": Estimator(), "a": torch.nn.Linear(1, 1), "data": np.ones(5), "f": len})
    assert [(m["variable"], m["kind"], m["type"]) for m in found] == [
        ("a", "torch", "torch.nn.modules.linear.Linear"),
        ("b", "estimator", f"{__name__}.Estimator"),
    ]
