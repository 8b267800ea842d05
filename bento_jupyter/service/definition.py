"""A service definition: named APIs built from plain or ``@api``-decorated functions."""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Callable,
    Generator,
    Iterable,
    Iterator,
    Mapping,
)
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import ConfigDict, TypeAdapter, ValidationError
from typing_extensions import NotRequired, TypedDict

from bento_jupyter.errors import InvalidInput, ServiceDefinitionError
from bento_jupyter.service.api import APIConfig, config_of
from bento_jupyter.service.batch_contract import batch_kind
from bento_jupyter.service.codecs import BYTES_AS_BASE64, Codec, TensorCodec, codec_for, invalid_input
from bento_jupyter.torch_probe import is_tensor_type


def _json_problem(message: str) -> str:
    """pydantic's JSON error, named plainly where its own words are obscure (a lone UTF-16 surrogate)."""
    if "hex escape" in message:  # "unexpected end of hex escape", "lone leading surrogate in hex escape"
        where = message[message.find(" at line ") :] if " at line " in message else ""
        return f"invalid unicode escape: a \\uD800-\\uDFFF surrogate without its pair{where}"
    return message


SERVICE_NAME = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?$")
_RESERVED_ROUTES = frozenset({"/", "/readyz", "/livez", "/healthz", "/metrics", "/schema.json", "/docs.json", "/docs"})
_RESERVED_PREFIXES = ("/v2/", "/static_docs/", "/_bento/")
_STREAM_ORIGINS = (Iterator, Iterable, Generator, AsyncIterator, AsyncIterable, AsyncGenerator)


def _item_hint(return_hint: Any) -> Any:
    """What a generator's return hint says it yields (``Iterator[str]`` -> ``str``); Any when unsaid."""
    if typing.get_origin(return_hint) in _STREAM_ORIGINS and typing.get_args(return_hint):
        return typing.get_args(return_hint)[0]
    return Any


@dataclass(frozen=True)
class Param:
    """One handler parameter: its JSON key, codec and default."""

    name: str
    codec: Codec
    required: bool
    default: Any = None


@dataclass(frozen=True)
class APIMethod:
    """A handler bound to a route, with typed inputs and output."""

    name: str
    route: str
    func: Callable[..., Any]
    config: APIConfig
    params: tuple[Param, ...]
    output: Codec  # of the result, or of each item when ``is_stream``
    is_async: bool
    inputs: TypeAdapter[Any] = field(compare=False, repr=False)
    is_stream: bool = False

    @classmethod
    def from_function(cls, func: Callable[..., Any], config: APIConfig | None = None) -> APIMethod:
        """Read the signature and type hints of ``func``; raise ServiceDefinitionError if unusable."""
        config = config or config_of(func) or APIConfig()
        name = config.name or func.__name__
        try:
            hints = typing.get_type_hints(func, include_extras=True)  # Annotated metadata: a tensor's Shape, DType
        except Exception as exc:
            raise ServiceDefinitionError(f"cannot resolve type hints of {name}(): {exc}") from None
        params = []
        for p in inspect.signature(func).parameters.values():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY):
                raise ServiceDefinitionError(f"{name}(): parameter {p.name!r} must be a plain named parameter")
            required = p.default is inspect.Parameter.empty
            params.append(Param(p.name, codec_for(hints.get(p.name, Any)), required, None if required else p.default))
            _refuse_arbitrary(name, params[-1])
        is_stream = inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func)
        output_hint = hints.get("return", Any)
        method = cls(
            name=name,
            route=config.route or f"/{name}",
            func=func,
            config=config,
            params=tuple(params),
            output=codec_for(_item_hint(output_hint) if is_stream else output_hint),
            is_async=inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func),
            is_stream=is_stream,
            inputs=_inputs_adapter(name, params),
        )
        method._check()
        if config.batchable:
            batch_kind(name, hints.get(method.batch_param.name, Any), config.batch_dim)
        return method

    def _check(self) -> None:
        if self.route in _RESERVED_ROUTES or self.route.startswith(_RESERVED_PREFIXES):
            raise ServiceDefinitionError(f"{self.name}(): route {self.route} is reserved by the server")
        if self.config.batchable:
            if len(self.params) != 1:
                raise ServiceDefinitionError(f"{self.name}(): a batchable API takes exactly one parameter, the batch")
            if self.is_async or self.is_stream:
                raise ServiceDefinitionError(f"{self.name}(): a batchable API must be a plain (sync) function")
        if self.config.task and self.is_stream:
            raise ServiceDefinitionError(f"{self.name}(): a task returns one result: it cannot be a generator")

    @property
    def batch_param(self) -> Param:
        """The parameter whose values are merged into batches (batchable APIs only)."""
        return self.params[0]

    def decode(self, body: bytes) -> dict[str, Any]:
        """A request's JSON object (empty: ``{}``) as keyword arguments; InvalidInput names the field.

        Validation is pydantic's strict JSON mode: a value must have its declared JSON type (``false`` is no
        number), integers keep every digit, and a field the API does not take is refused.
        """
        try:
            kwargs = self.inputs.validate_json(body or b"{}", strict=True)
        except ValidationError as exc:
            problem = exc.errors(include_url=False)[0]
            if problem["type"] == "json_invalid":
                raise InvalidInput("", f"request body is not valid JSON: {_json_problem(problem['msg'])}") from None
            if problem["type"] == "dict_type":
                raise InvalidInput("", "request body must be a JSON object keyed by parameter name") from None
            raise invalid_input(exc) from None
        for p in self.params:
            if p.name not in kwargs:
                kwargs[p.name] = p.default
            elif isinstance(p.codec, TensorCodec):
                kwargs[p.name] = p.codec.decode(kwargs[p.name], p.name)
        return kwargs

    def encode(self, result: Any) -> Any:
        """Turn a handler's result into a JSON-serialisable value (numpy arrays allowed).

        ResultMismatch (a ValueError) for a result that is not what the return hint declares: under ``-> int`` a
        float that is no whole number (NaN and ±Infinity included), under ``-> bool`` a number, and so on."""
        return self.output.encode(result)

    @property
    def takes_tensor(self) -> bool:
        return any(isinstance(p.codec, TensorCodec) for p in self.params)


def _refuse_arbitrary(name: str, param: Param) -> None:
    """ServiceDefinitionError naming the field when ``param`` holds a type only ``isinstance`` validates
    (``arbitrary_types_allowed``): no JSON request can hold one (a result may: it is written as its value allows)."""
    found = getattr(param.codec, "arbitrary", None)
    if found is None:
        return
    where, cls = found
    hint = "nested lists (list[float])" if cls is np.ndarray or is_tensor_type(cls) else "a JSON type or a model"
    raise ServiceDefinitionError(
        f"{name}(): parameter {param.name!r}: field {where or param.name} is a {cls.__name__}, which no JSON request"
        f" can hold (pydantic checks it with isinstance); declare {hint} there, or a whole np.ndarray parameter"
    )


def _inputs_adapter(name: str, params: list[Param]) -> TypeAdapter[Any]:
    """Validates a whole request body: a JSON object with one key per parameter and no other."""
    fields = {p.name: p.codec.annotation if p.required else NotRequired[p.codec.annotation] for p in params}
    title = "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", name)) + "Input"
    # a TypedDict made at run time from the parameters, which mypy cannot follow; pydantic reads its config attribute
    body = TypedDict(title, fields)  # type: ignore[misc]
    body.__pydantic_config__ = ConfigDict(extra="forbid", **BYTES_AS_BASE64)  # type: ignore[attr-defined]
    try:
        return TypeAdapter(body)
    except Exception as exc:
        raise ServiceDefinitionError(f"{name}(): cannot validate its parameters: {exc}") from None


@dataclass(frozen=True)
class EndpointChoice:
    """Which of a cell's functions are endpoints, and which were skipped (with why)."""

    endpoints: list[Callable[..., Any]]
    skipped: dict[str, str]


def choose_endpoints(funcs: Iterable[Callable[..., Any]]) -> EndpointChoice:
    """The endpoint rule: when any function is ``@api``-decorated, only decorated ones are endpoints
    (the rest are helpers); with no ``@api`` at all, every function given is one."""
    funcs = list(funcs)
    if not any(config_of(f) is not None for f in funcs):
        return EndpointChoice(funcs, {})
    return EndpointChoice(
        [f for f in funcs if config_of(f) is not None],
        {f.__name__: "not decorated with @api" for f in funcs if config_of(f) is None},
    )


@dataclass(frozen=True)
class ServiceDefinition:
    """A named set of APIs, keyed by route."""

    name: str
    apis: Mapping[str, APIMethod]

    @classmethod
    def from_functions(cls, name: str, funcs: Iterable[Callable[..., Any]]) -> ServiceDefinition:
        if not SERVICE_NAME.match(name):
            raise ServiceDefinitionError(
                f"invalid service name {name!r}: use lowercase letters, digits, '.', '_' or '-'"
            )
        apis: dict[str, APIMethod] = {}
        for func in funcs:
            method = APIMethod.from_function(func)
            if method.route in apis:
                raise ServiceDefinitionError(f"two APIs claim route {method.route}")
            apis[method.route] = method
        if not apis:
            raise ServiceDefinitionError(f"service {name!r} defines no API: define at least one public function")
        return cls(name, apis)
