"""The simdjson fast path reads exactly what the general path (orjson, then np.asarray) reads, or steps aside."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from bento_jupyter.server.json_tensor import TensorBodyReader

SAME_AS_GENERAL_PATH = [
    b'{"inputs": [[0.5, -1.25, 3e2, 1E-3]]}',
    b'{"inputs": [[1, 2], [3, 4], [5, 6]]}',
    b'{"inputs": [1, 2.5, -3]}',
    b'{"inputs": [-0, 7]}',
    b' { "inputs" :\n [ [ 1.0 ] , [ 2.0 ] ] } ',
    b'{"features": [[1, 2]]}',  # the key's own "e" does not make the numbers floats
    b'{"\\u0069nputs": [0.25]}',  # an escaped key
]

NOT_PLAIN = [
    b'{"inputs": [[1.5], [2.5, 3.5]]}',  # ragged
    b'{"inputs": [[1.5, [2.5, 3.0]], [3.5, 4.5]]}',  # nested deeper than its rows
    b'{"inputs": [[[1.0, 2.0]], [[3.0, 4.0]]]}',  # three dimensions: left to the general path
    b'{"inputs": [1.5, [2.5]]}',
    b'{"inputs": ["a", "b"]}',
    b'{"inputs": [true, false]}',
    b'{"inputs": [null]}',
    b'{"inputs": []}',
    b'{"inputs": [[]]}',
    b'{"inputs": 3}',
    b'{"inputs": [1.0], "extra": 1}',
    b'{"other": [1.0]}',
    b'{"inputs": [1], "inputs": [2.5]}',  # a repeated key: orjson keeps the last
    b"[1.0, 2.0]",
    b'{"inputs": [1.0,]}',
    b'{"inputs": [18446744073709551615]}',  # beyond int64: np.asarray makes uint64
    b"",
    b'\xef\xbb\xbf{"inputs": [1.0]}',  # a byte order mark: orjson refuses it, so the general path words the 400
]


@pytest.mark.parametrize("body", SAME_AS_GENERAL_PATH)
def test_plain_bodies_read_as_the_general_path_reads_them(body: bytes) -> None:
    key = next(iter(orjson.loads(body)))
    got = TensorBodyReader(key).read(body)
    expected = np.asarray(orjson.loads(body)[key])
    assert got is not None
    assert got.dtype == expected.dtype and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)
    got[0] = 0  # handlers may work in place


@pytest.mark.parametrize("body", NOT_PLAIN)
def test_other_bodies_are_left_to_the_general_path(body: bytes) -> None:
    assert TensorBodyReader("inputs").read(body) is None


def test_one_reader_reads_body_after_body() -> None:
    reader = TensorBodyReader("inputs")
    first = reader.read(b'{"inputs": [[1.5, 2.5]]}')
    assert reader.read(b"not json") is None
    second = reader.read(b'{"inputs": [[3.5, 4.5]]}')
    np.testing.assert_array_equal(first, [[1.5, 2.5]])
    np.testing.assert_array_equal(second, [[3.5, 4.5]])
