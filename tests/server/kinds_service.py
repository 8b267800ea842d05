"""A service with one API of each parameter kind, batchable and not: what the schema-driven tests run against."""

from __future__ import annotations

import enum
from typing import Annotated, Optional

import numpy as np
import torch
from pydantic import BaseModel

from bento_jupyter import DType, Shape, api


class Tier(enum.Enum):
    FREE = "free"
    PRO = "pro"


class Address(BaseModel):
    street: str
    city: str


class Customer(BaseModel):
    name: str
    age: int
    address: Address
    tier: Tier = Tier.FREE
    scores: list[float] = []


def number(x: float, times: int = 2) -> float:
    return x * times


def flag(on: bool) -> bool:
    return not on


def text(value: str) -> str:
    return value.upper()


def numbers(values: list[float]) -> list[float]:
    return np.asarray(values) * 2 if values else []


def mapping(counts: dict[str, int]) -> dict[str, int]:
    return {k: v + 1 for k, v in counts.items()}


def maybe(n: Optional[int] = None) -> Optional[int]:  # noqa: UP045
    return None if n is None else -n


def tier(t: Tier) -> Tier:
    return Tier.PRO if t is Tier.FREE else Tier.FREE


def customer(c: Customer) -> Customer:
    return c


def anything(value):
    return value


def tensor(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float64).sum(axis=0) if x.size else x


def torch_tensor(x: torch.Tensor) -> torch.Tensor:
    return x.float() * 2


@api(batchable=True, max_batch_size=16)
def batched_rows(rows: np.ndarray) -> np.ndarray:
    return rows.astype(np.float64) * 2


@api(batchable=True, max_batch_size=16)
def batched_texts(texts: list[str]) -> list[int]:
    return [len(t) for t in texts]


async def async_echo(value: int) -> int:
    return value


def shaped(x: Annotated[np.ndarray, Shape((-1, 3)), DType("float32")]) -> np.ndarray:
    assert x.dtype == np.float32  # the declared dtype, whatever the JSON numbers were
    return x * 2


@api(batchable=True, max_batch_size=8)
def batched_counts(rows: Annotated[torch.Tensor, Shape((-1, 2)), DType("int16")]) -> torch.Tensor:
    assert rows.dtype == torch.int16
    return rows.sum(dim=1)


ALL = [
    number,
    flag,
    text,
    numbers,
    mapping,
    maybe,
    tier,
    customer,
    anything,
    tensor,
    torch_tensor,
    batched_rows,
    batched_texts,
    async_echo,
    shaped,
    batched_counts,
]
