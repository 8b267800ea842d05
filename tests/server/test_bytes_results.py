"""bytes in results are base64 in JSON (pydantic's ``ser_json_bytes="base64"``: its URL-safe alphabet, padded), under
every hint and none, whatever the bytes (UTF-8 text cannot hold ``b"\\x00\\xff"``); a ``bytes`` parameter reads the
same base64."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Optional

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel


class Record(BaseModel):
    raw: bytes
    n: int = 1


def as_bytes(value: list[int]) -> bytes:
    return bytes(value)


def hexed(value: bytes) -> str:
    return value.hex()


def in_model(octets: list[int]) -> Record:
    return Record(raw=bytes(octets))


def optional(octets: list[int]) -> Optional[bytes]:  # noqa: UP045  (the spelling users write)
    return bytes(octets)


def listed(octets: list[int]) -> list[bytes]:
    return [bytes(octets), bytes(octets)]


def untyped(octets: list[int]):
    return {"b": bytes(octets), "listed": [bytes(octets)]}


def model_in_untyped(octets: list[int]):
    return {"nested": Record(raw=bytes(octets))}


def in_dict(octets: list[int]) -> dict:
    return {"b": bytes(octets)}


def items(octets: list[int]) -> Iterator[bytes]:
    yield bytes(octets)


def b64(value: bytes) -> str:
    return base64.urlsafe_b64encode(value).decode()


EXPECTED = {
    "as_bytes": lambda v: b64(v),
    "in_model": lambda v: {"raw": b64(v), "n": 1},
    "optional": lambda v: b64(v),
    "listed": lambda v: [b64(v), b64(v)],
    "untyped": lambda v: {"b": b64(v), "listed": [b64(v)]},
    "in_dict": lambda v: {"b": b64(v)},
    "items": lambda v: [b64(v)],
}


@pytest.fixture(scope="module")
def url():
    from bento_jupyter.server.app import ServiceApp
    from bento_jupyter.server.runner import ThreadedServer
    from bento_jupyter.service.definition import ServiceDefinition

    funcs = [as_bytes, hexed, in_model, optional, listed, untyped, model_in_untyped, in_dict, items]
    server = ThreadedServer(ServiceApp(ServiceDefinition.from_functions("raw", funcs)), "127.0.0.1", None)
    server.start()
    yield server.url
    server.stop()


@pytest.mark.parametrize("api", EXPECTED)
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.binary(max_size=24) | st.sampled_from([b"\x00\xff", b"\xff\xfe", b"ab", b""]))
def test_bytes_in_a_result_are_base64_under_every_hint(url, api, value):
    headers = {"accept": "application/json"} if api == "items" else {}
    key = "value" if api == "as_bytes" else "octets"
    answer = requests.post(f"{url}/{api}", json={key: list(value)}, headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    if api == "as_bytes":  # a string result is sent as text/plain, as -> str is
        assert answer.text == EXPECTED[api](value)
    else:
        assert answer.json() == EXPECTED[api](value)


@given(value=st.binary(max_size=24))
@settings(max_examples=10, deadline=None)
def test_a_bytes_parameter_reads_base64(url, value):
    assert requests.post(f"{url}/hexed", json={"value": b64(value)}, timeout=10).text == value.hex()


def test_a_bytes_parameter_that_is_not_base64_is_a_400_naming_it(url):
    answer = requests.post(f"{url}/hexed", json={"value": "not base64!"}, timeout=10)
    assert answer.status_code == 400 and answer.json()["field"] == "value"


def test_a_model_in_an_unannotated_result_writes_bytes_as_its_own_config_says_and_never_fails(url):
    """Nothing declares the model there: pydantic writes it by its own config (UTF-8 text by default); bytes that
    are not UTF-8 are base64 rather than a 500."""
    text = requests.post(f"{url}/model_in_untyped", json={"octets": list(b"ab")}, timeout=10)
    binary = requests.post(f"{url}/model_in_untyped", json={"octets": [0, 255]}, timeout=10)
    assert text.json() == {"nested": {"raw": "ab", "n": 1}}
    assert binary.json() == {"nested": {"raw": b64(b"\x00\xff"), "n": 1}}
