"""What an operation of the registry API is (method, path, scope, handler) and what every handler receives."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from bento_jupyter.registry.auth import Principal, Scope, TokenStore
from bento_jupyter.registry.records import Record
from bento_jupyter.registry.signatures import SignaturePolicy
from bento_jupyter.registry.store import RegistryStore

MAX_JSON_BYTES = 16 << 20
MAX_BLOB_BYTES = 64 << 30


@dataclass(frozen=True)
class Limits:
    max_json_bytes: int = MAX_JSON_BYTES
    max_blob_bytes: int = MAX_BLOB_BYTES


@dataclass
class Context:
    store: RegistryStore
    tokens: TokenStore
    limits: Limits
    open: bool = False
    signatures: SignaturePolicy = field(default_factory=SignaturePolicy)


Handler = Callable[[Context, Request, Principal], Awaitable[Response]]


@dataclass(frozen=True)
class Operation:
    """One endpoint: what it does (its handler's docstring), the scope it needs (None: public) and its body."""

    method: str
    path: str
    scope: Scope | None
    handler: Handler
    request: type[BaseModel] | None = None  # the JSON body's model: the handler parses the body through it
    result: type[Record] | None = None  # what a 200 or 201 answers with (its JSON Schema goes into the OpenAPI)
    binary: bool = False  # the body is bytes (a blob), streamed

    @property
    def summary(self) -> str:
        """The first line of the handler's docstring: the OpenAPI document's summary of the operation."""
        return (self.handler.__doc__ or "").strip().split("\n", 1)[0]
