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
    """One endpoint: what it does, the scope it needs (None: public) and what its body is."""

    method: str
    path: str
    scope: Scope | None
    summary: str
    handler: Handler
    body: str | None = None  # "json" or "binary"
    result: type[Record] | None = None  # what a 200 or 201 answers with (its JSON Schema goes into the OpenAPI)
    request: type[BaseModel] | None = None  # the JSON body's model, when the handler parses the body through one
