"""Every hint kind pydantic describes with ``$ref``/``$defs``, ``prefixItems``, ``anyOf``, ``enum`` or
``additionalProperties`` (dataclasses, TypedDict, NamedTuple, Enum, nested and recursive models) serves as a
parameter and as a result: the service starts, its OpenAPI document validates, and a value comes back as sent
(a dataclass in any hint failed the cell with AttributeError before)."""

from __future__ import annotations

import dataclasses
import enum
from typing import Any, NamedTuple, Optional

import pydantic.dataclasses
import pytest
import requests
from openapi_spec_validator import validate
from pydantic import BaseModel, ConfigDict
from typing_extensions import TypedDict  # pydantic needs it for a TypedDict on Python < 3.12

from bento_jupyter.errors import ServiceDefinitionError
from bento_jupyter.service.definition import ServiceDefinition


@dataclasses.dataclass
class Point:
    x: float
    y: float = 0.0


@dataclasses.dataclass
class Shape:
    points: list[Point]
    name: str


class Size(TypedDict):
    w: int
    h: int


class Pair(NamedTuple):
    a: int
    b: str


class Color(enum.Enum):
    red = "red"
    blue = "blue"


class Request(BaseModel):
    p: Point
    size: Size
    color: Color = Color.red


class Outer(BaseModel):
    inner: Request
    tags: dict[str, Point]


class Tree(BaseModel):
    value: int
    children: list[Tree] = []


class Note:
    """Known to pydantic only by isinstance."""


@pydantic.dataclasses.dataclass(config=ConfigDict(arbitrary_types_allowed=True))
class Holder:
    note: Note


POINT = {"x": 1.5, "y": -2.0}
REQUEST = {"p": POINT, "size": {"w": 2, "h": 3}, "color": "blue"}
KINDS: list[tuple[str, Any, Any]] = [
    ("dataclass", Point, POINT),
    ("nested_dataclass", Shape, {"points": [POINT, {"x": 0.0, "y": 0.0}], "name": "s"}),
    ("list_of_dataclass", list[Point], [POINT, POINT]),
    ("optional_dataclass", Optional[Point], POINT),  # noqa: UP045 (the hint form under test)
    ("optional_dataclass_none", Optional[Point], None),  # noqa: UP045
    ("dict_of_dataclass", dict[str, Point], {"a": POINT}),
    ("typed_dict", Size, {"w": 1, "h": 2}),
    ("named_tuple", Pair, [1, "b"]),
    ("tuple", tuple[int, str, Point], [1, "b", POINT]),
    ("enum", Color, "blue"),
    ("model_with_dataclass", Request, REQUEST),
    ("nested_models", Outer, {"inner": REQUEST, "tags": {"t": POINT}}),
    ("recursive_model", Tree, {"value": 1, "children": [{"value": 2, "children": []}]}),
    ("list_of_models", list[Request], [REQUEST]),
]


def echo(name: str, hint: Any) -> Any:
    """An API named ``name`` taking ``v`` of ``hint`` and returning it."""

    def handler(v):  # type: ignore[no-untyped-def]
        return v

    handler.__name__ = handler.__qualname__ = name
    handler.__annotations__ = {"v": hint, "return": hint}
    return handler


@pytest.fixture(scope="module")
def url() -> Any:
    from bento_jupyter.server.app import ServiceApp
    from bento_jupyter.server.runner import ThreadedServer

    funcs = [echo(name, hint) for name, hint, _ in KINDS]
    server = ThreadedServer(ServiceApp(ServiceDefinition.from_functions("kinds", funcs)), "127.0.0.1", None)
    server.start()
    yield server.url
    server.stop()


@pytest.mark.parametrize(("name", "hint", "value"), KINDS, ids=[k[0] for k in KINDS])
def test_a_value_of_each_hint_kind_round_trips(url, name, hint, value):
    answer = requests.post(f"{url}/{name}", json={"v": value}, timeout=10)
    assert answer.status_code == 200, answer.text
    json_answer = answer.headers["content-type"].startswith("application/json")
    assert (answer.json() if json_answer else answer.text) == value  # a str (a str Enum's too) is sent as text


def test_the_document_of_every_hint_kind_validates(url):
    document = requests.get(f"{url}/docs.json", timeout=10).json()
    validate(document)
    for name, _, _ in KINDS:
        assert f"/{name}" in document["paths"]
        assert requests.get(f"{url}/v2/models/{name}", timeout=10).status_code == 200
    assert requests.get(f"{url}/schema.json", timeout=10).status_code == 200


def test_a_class_known_only_by_isinstance_inside_a_dataclass_parameter_is_refused_naming_the_field():
    with pytest.raises(ServiceDefinitionError) as refused:
        ServiceDefinition.from_functions("arb", [echo("hold", Holder)])
    assert "field Holder.note is a Note" in str(refused.value)
