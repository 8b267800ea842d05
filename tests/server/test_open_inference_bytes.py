"""One rule for v2 BYTES inputs, whatever the hint: an element for a parameter whose type admits a string is that
raw UTF-8 string; for any other type (``Any`` included) it is JSON text. Model metadata declares the shape infer
takes. Checked with tritonclient.http, binary and JSON, over generated values under each hint."""

from __future__ import annotations

import enum
import json
from typing import Any, Literal, Optional, Union

import numpy as np
import pytest
import tritonclient.http as triton
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from tritonclient.utils import InferenceServerException


class Color(str, enum.Enum):
    red = "red"
    blue = '"blue"'


class Point(BaseModel):
    x: int
    label: str


TEXT = st.text(max_size=12)
JSON_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | TEXT,
    lambda inner: st.lists(inner, max_size=3),
    max_leaves=8,
)
# hint -> (does it admit a string, values a client may send for it)
HINTS: dict[str, tuple[Any, bool, st.SearchStrategy[Any]]] = {
    "str": (str, True, TEXT),
    "optional_str": (Optional[str], True, TEXT),  # noqa: UP045  (the spelling users write)
    "int_or_str": (Union[int, str], True, TEXT),  # noqa: UP007
    "literal": (Literal["q", '"q"', "5"], True, st.sampled_from(["q", '"q"', "5"])),
    "enum": (Color, True, st.sampled_from(["red", '"blue"'])),
    "any": (Any, False, JSON_VALUE),  # declares nothing: JSON text, so it can carry any JSON value
    "int": (int, False, st.integers(-(2**40), 2**40)),
    "int_literal": (Literal[1, 2], False, st.sampled_from([1, 2])),
    "dict": (dict, False, st.dictionaries(TEXT, JSON_VALUE, max_size=3)),
    "model": (Point, False, st.builds(dict, x=st.integers(-100, 100), label=TEXT)),
}


def _echo(name: str, hint: Any):
    def echo(x) -> str:
        return json.dumps(x.model_dump() if isinstance(x, BaseModel) else x.value if isinstance(x, enum.Enum) else x)

    echo.__name__ = name
    echo.__annotations__ = {"x": hint, "return": str}
    return echo


def _list_echo(name: str, hint: Any):
    def echo(xs) -> str:
        return json.dumps([x.model_dump() if isinstance(x, BaseModel) else x for x in xs])

    echo.__name__ = name
    echo.__annotations__ = {"xs": hint, "return": str}
    return echo


@pytest.fixture
def client(serve):
    apis = [_echo(name, hint) for name, (hint, _, _) in HINTS.items()]
    apis += [_list_echo("texts", list[str]), _list_echo("maybe_texts", list[Optional[str]])]  # noqa: UP045
    apis.append(_list_echo("points", list[Point]))
    server = serve("bytes", *apis)
    with triton.InferenceServerClient(url=server.url.removeprefix("http://")) as connection:
        yield connection


def _send(client, model: str, elements: list[str], binary: bool, name: str = "x") -> Any:
    tensor = triton.InferInput(name, [len(elements)], "BYTES")
    tensor.set_data_from_numpy(np.array([e.encode() for e in elements], dtype=np.object_), binary_data=binary)
    answer = client.infer(model, [tensor], outputs=[triton.InferRequestedOutput("output", binary_data=binary)])
    (text,) = answer.as_numpy("output").tolist()
    return json.loads(text.decode() if isinstance(text, bytes) else text)


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize("hint", HINTS)
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_bytes_element_is_raw_text_where_the_type_admits_a_string_else_json_text(client, hint, binary, data):
    _, admits_text, values = HINTS[hint]
    value = data.draw(values)
    element = value if admits_text else json.dumps(value)
    assert _send(client, hint, [element], binary) == value
    assert client.get_model_metadata(hint)["inputs"] == [
        {
            "name": "x",
            "datatype": "INT64" if hint in ("int", "int_literal") else "BYTES",
            # Any takes nested lists of any rank: [-1] flagged as such
            **(
                {"shape": [-1], "parameters": {"unknown_rank": True, "max_rank": 8}}
                if hint == "any"
                else {"shape": [1]}
            ),
        }
    ]


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@given(texts=st.lists(TEXT, min_size=1, max_size=4))
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_bytes_elements_of_a_list_of_text_are_raw_text(client, binary, texts):
    assert _send(client, "texts", texts, binary, name="xs") == texts
    assert _send(client, "maybe_texts", texts, binary, name="xs") == texts
    points = [{"x": len(t), "label": t} for t in texts]  # not text: each element is one item's JSON text
    assert _send(client, "points", [json.dumps(p) for p in points], binary, name="xs") == points


def test_metadata_shape_is_what_infer_takes(client):
    """A one-element input refuses more elements (as its [1] says); ``Any`` ([-1]) takes any shape."""
    pair = np.array([[1, 2], [3, 4]], np.int64)
    tensor = triton.InferInput("x", [2, 2], "INT64")
    tensor.set_data_from_numpy(pair, binary_data=False)
    (text,) = client.infer("any", [tensor]).as_numpy("output").tolist()
    assert json.loads(text) == pair.tolist()
    with pytest.raises(InferenceServerException, match="expected one element"):
        client.infer("int", [tensor])
