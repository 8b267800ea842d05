"""One decode of a request body (server/request_arguments.py): a value is parsed and validated identically whether the
API answers once or streams, checked with generated bodies against a real server."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import requests
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bento_jupyter import api


@api
def echo(x: np.ndarray) -> np.ndarray:
    return x


@api
def echo_items(x: np.ndarray) -> Iterator[np.ndarray]:
    yield x


@pytest.fixture(scope="module")
def url():
    from bento_jupyter.server.app import ServiceApp
    from bento_jupyter.server.runner import ThreadedServer
    from bento_jupyter.service.definition import ServiceDefinition

    server = ThreadedServer(ServiceApp(ServiceDefinition.from_functions("decode", [echo, echo_items])), "127.0.0.1")
    server.start()
    yield server.url
    server.stop()


NUMBERS = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(["1e400", "-0", "0.0", "1E-2", "true", "null", '"1"', "NaN", "Infinity", "1.", "01", ".5"]),
)
SPACE = st.sampled_from(["", " ", "\n", "\t", "\r\n"])
BOM = "\ufeff"  # a UTF-8 byte order mark: refused as not JSON by every route alike


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    """Bodies for a one-tensor API: plain vectors and matrices of JSON numbers, laid out and framed variously."""

    def numbers(n: int) -> str:
        return "[" + ",".join(draw(SPACE) + draw(NUMBERS) + draw(SPACE) for _ in range(n)) + "]"

    rows, cols = draw(st.integers(1, 3)), draw(st.integers(0, 3))
    array = numbers(rows) if cols == 0 else "[" + ",".join(numbers(cols) for _ in range(rows)) + "]"
    key = draw(st.sampled_from(['"x"', '"\\u0078"', '"y"']))
    before, after = draw(st.sampled_from(["", " ", BOM])), draw(st.sampled_from(["", "\n", ",", "}"]))
    return f"{before}{{{draw(SPACE)}{key}:{draw(SPACE)}{array}}}{after}".encode()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies())
@example(body=f'{BOM}{{"x": [[1.5, 2.5]]}}'.encode())
@example(body=b'{"x": [9223372036854775808]}')
def test_a_body_decodes_alike_whether_the_api_streams_or_not(url, body):
    headers = {"content-type": "application/json", "accept": "application/json"}
    once = requests.post(f"{url}/echo", data=body, headers=headers, timeout=10)
    streamed = requests.post(f"{url}/echo_items", data=body, headers=headers, timeout=10)
    assert streamed.status_code == once.status_code, (once.text, streamed.text)
    if once.status_code == 200:
        assert streamed.json() == [once.json()]  # the stream's one item is the unary answer
    else:
        assert streamed.json() == once.json()  # the same error, naming the same field
