"""Results under fully declared hints are written once, and still in the documented JSON: NaN and ±Infinity as
strings, integers of any size exactly, numpy values as plain numbers."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bento_jupyter.service.codecs import codec_for
from bento_jupyter.service.json_values import dumps

NAMES = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
floats = st.floats(allow_nan=True, allow_infinity=True)
ints = st.integers(-(2**80), 2**80)


def read(body: bytes) -> Any:
    """The body as Python's own JSON reads it, the documented strings turned back into floats."""

    def back(value: Any) -> Any:
        if isinstance(value, str):
            return NAMES.get(value, value)
        if isinstance(value, list):
            return [back(item) for item in value]
        if isinstance(value, dict):
            return {key: back(item) for key, item in value.items()}
        return value

    return back(json.loads(body))


def same(got: Any, expected: Any) -> bool:
    if isinstance(expected, float):
        return isinstance(got, float) and (got == expected or (math.isnan(got) and math.isnan(expected)))
    if isinstance(expected, (list, tuple)):
        return isinstance(got, list) and len(got) == len(expected) and all(map(same, got, expected))
    if isinstance(expected, dict):
        return isinstance(got, dict) and got.keys() == expected.keys() and all(same(got[k], expected[k]) for k in got)
    return got == expected and type(got) is type(expected)


CASES = [
    (float, floats),
    (list[float], st.lists(floats, max_size=6)),
    (dict[str, float], st.dictionaries(st.text(max_size=3), floats, max_size=4)),
    (float | None, st.none() | floats),
    (tuple[int, float], st.tuples(ints, floats)),
    (list[list[float]], st.lists(st.lists(floats, max_size=3), max_size=3)),
    (int, ints),
    (dict[str, list[int]], st.dictionaries(st.text(max_size=3), st.lists(ints, max_size=3), max_size=3)),
]


@given(data=st.data(), case=st.sampled_from(CASES), numpy=st.booleans())
@settings(max_examples=150, deadline=None)
def test_a_declared_hint_writes_non_finite_floats_and_big_integers_as_documented(data, case, numpy):
    hint, values = case
    value = data.draw(values)
    codec = codec_for(hint)
    assert codec.declared  # these hints take the one-writer path
    given_value = np.asarray(value) if numpy and hint is list[float] else value
    assert b"null" not in dumps(codec.encode(given_value)) or value is None
    assert same(read(dumps(codec.encode(given_value))), value)


def test_hints_with_inferred_parts_are_not_declared():
    from pydantic import BaseModel

    class Point(BaseModel):
        x: float

    assert not any(codec_for(hint).declared for hint in (Any, dict, list, Point, list[Point], dict[str, Any]))
