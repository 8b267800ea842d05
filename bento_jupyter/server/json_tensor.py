"""Read a ``{"param": [[numbers...], ...]}`` request body straight into a numpy array.

The general path (``orjson.loads`` then ``np.asarray``) makes one Python float per number and
frees them again, which under load costs more than the model's forward per row. simdjson
parses the numbers into a flat buffer instead. The fast path answers only bodies whose meaning
is unambiguous: one key, and a vector or a rectangular matrix of numbers. For anything else it
returns None, and the caller takes the general path, which also words the errors.
"""

from __future__ import annotations

import numpy as np
import simdjson

# 19 digits in a row are where integers beyond int64 begin (simdjson would make them floats). Found by mapping
# every digit to 1 and the rest to 0, then one substring search: a tenth of a regex's time on a 2 kB body.
_DIGIT_MASK = bytes(1 if 0x30 <= byte <= 0x39 else 0 for byte in range(256))
_LONG_DIGITS = b"\x01" * 19
_BOM = b"\xef\xbb\xbf"  # simdjson skips a UTF-8 byte order mark; the general path refuses it (not JSON)


class TensorBodyReader:
    """Reads the one tensor parameter of an API from raw bodies; use from one thread only.

    The array is the one ``np.asarray`` makes of the same JSON numbers: float64 if any is a
    float, else int64.
    """

    def __init__(self, key: str) -> None:
        self._key = key
        self._parser = simdjson.Parser()

    def read(self, raw: bytes) -> np.ndarray | None:
        """The array under the key, or None when the body is not a plain ``{key: array}``."""
        start = raw.find(b"[")  # a parameter name holds no "[", so the array opens here
        if start < 0 or raw.startswith(_BOM):
            return None
        nested = raw.count(b"[", start) - 1  # a matrix has one nested array per row, a vector none
        # a JSON number with ".", "e" or "E" is a float, else an integer
        floats = raw.find(b".", start) >= 0 or raw.find(b"e", start) >= 0 or raw.find(b"E", start) >= 0
        if floats and raw.translate(_DIGIT_MASK).find(_LONG_DIGITS, start) >= 0:
            return None  # perhaps an integer beyond int64 among floats: the general path refuses it
        try:
            return self._array(self._parser.parse(raw), nested, floats)
        except (ValueError, TypeError, KeyError, RuntimeError):
            return None  # not JSON, not numbers, or integers beyond int64: the general path decides

    def _array(self, document: object, nested: int, floats: bool) -> np.ndarray | None:
        if not isinstance(document, simdjson.Object) or len(document) != 1:
            return None
        array = document[self._key]
        if not isinstance(array, simdjson.Array):
            return None
        rows = len(array)
        if nested == 0:
            shape: tuple[int, ...] = (rows,)
        elif nested == rows:  # each row an array of equal length, and no array deeper than that
            cols = len(array[0])
            for row in array:
                if not isinstance(row, simdjson.Array) or len(row) != cols:
                    return None
            shape = (rows, cols)
        else:
            return None
        dtype = np.float64 if floats else np.int64
        flat = np.frombuffer(array.as_buffer(of_type="d" if floats else "i"), dtype=dtype)
        return flat.reshape(shape) if flat.size else None  # np.asarray makes empty arrays float64
