"""bfloat16 without a numpy dtype for it: values live in float32 (which holds every bfloat16 exactly), and
a bfloat16 is the upper 16 bits of a float32.
"""

from __future__ import annotations

import numpy as np

NAME = "bfloat16"
MAX = 3.3895313892515355e38  # the largest finite bfloat16 (0x7F7F); anything larger rounds to it or to inf


def round_to_bfloat16(values: np.ndarray) -> np.ndarray:
    """float32 values rounded to the nearest bfloat16 (ties to even; NaN stays NaN), still float32."""
    return from_bfloat16_bits(to_bfloat16_bits(values))


def to_bfloat16_bits(values: np.ndarray) -> np.ndarray:
    """The bfloat16 nearest each value (ties to even), as its 16 bits (uint16)."""
    bits = np.ascontiguousarray(values, np.float32).view(np.uint32)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
    return np.where(np.isnan(values), np.uint16(0x7FC0), rounded)


def from_bfloat16_bits(bits: np.ndarray) -> np.ndarray:
    """float32 values of bfloat16 bit patterns (uint16)."""
    return (np.asarray(bits).astype(np.uint32) << 16).view(np.float32)
