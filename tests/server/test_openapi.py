"""/docs.json is a valid OpenAPI 3.1 document whose every $ref resolves, for services of every parameter kind."""

from __future__ import annotations

import enum
from typing import Optional

import numpy as np
import requests
import torch
from openapi_spec_validator import validate
from pydantic import BaseModel

from bento_jupyter import api


class Address(BaseModel):
    street: str
    city: str
    geo: tuple[float, float] | None = None


class Tier(enum.Enum):
    FREE = "free"
    PRO = "pro"


class Customer(BaseModel):
    name: str
    address: Address
    previous: list[Address] = []
    tier: Tier = Tier.FREE
    tags: dict[str, int] = {}


def register(customer: Customer, referrer: Optional[Customer] = None) -> Customer:  # noqa: UP045 (the user's spelling)
    return customer


def lookup(names: list[str], tier: Tier | None = None) -> dict[str, Address]:
    return {}


@api(batchable=True, max_batch_size=8)
def predict(inputs: np.ndarray) -> np.ndarray:
    return inputs


def scale(x: torch.Tensor, factor: float = 2.0) -> torch.Tensor:
    return x * factor


def anything(value):
    return value


def _refs(node, found: set[str]) -> set[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            found.add(node["$ref"])
        for value in node.values():
            _refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _refs(value, found)
    return found


def test_docs_json_validates_and_every_reference_resolves(serve):
    url = serve("crm", register, lookup, predict, scale, anything).url
    document = requests.get(f"{url}/docs.json", timeout=5).json()
    validate(document)  # raises OpenAPIValidationError with the offending path
    schemas = document["components"]["schemas"]
    refs = _refs(document, set())
    assert refs and all(ref.startswith("#/components/schemas/") for ref in refs)
    assert all(ref.rsplit("/", 1)[1] in schemas for ref in refs)
    assert {"Address", "Tier"} <= {name.split("-")[0] for name in schemas}
    assert "$defs" not in str(document)


def test_a_model_used_in_requests_and_results_is_one_component_per_reading(serve):
    url = serve("crm", register).url
    document = requests.get(f"{url}/docs.json", timeout=5).json()
    schemas = document["components"]["schemas"]
    # A float in a result may be "NaN" or "Infinity": the result's reading of the model says so, the request's not.
    assert "Address-Input" in schemas and "Address-Output" in schemas
    geo_out = str(schemas["Address-Output"]["properties"]["geo"])
    assert "NaN" in geo_out and "NaN" not in str(schemas["Address-Input"])
