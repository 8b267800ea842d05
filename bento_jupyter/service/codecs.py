"""Type-hint driven codecs: turn JSON payload values into handler arguments and results back."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Annotated, Any, Protocol, get_args, get_origin

import numpy as np
import orjson
import pydantic_core
from pydantic import ConfigDict, PydanticUserError, TypeAdapter, ValidationError, WithJsonSchema

from bento_jupyter.errors import InvalidInput, ResultMismatch, ServiceDefinitionError
from bento_jupyter.service import bfloat16
from bento_jupyter.service.arbitrary_types import ServiceJsonSchema, arbitrary_field
from bento_jupyter.service.json_values import json_ready, tensor_as_array
from bento_jupyter.service.tensor_schema import MAX_JSON_DIMS, TENSOR_FORMATS
from bento_jupyter.service.tensor_spec import TensorSpec
from bento_jupyter.torch_probe import is_tensor_type

_NUMERIC_KINDS = frozenset("biuf")
# bytes in JSON are base64, both ways (pydantic's setting; its URL-safe alphabet, padded): UTF-8 text cannot hold
# every byte string
BYTES_AS_BASE64 = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")
_ANY: TypeAdapter[Any] = TypeAdapter(Any, config=BYTES_AS_BASE64)
# Core schema types pydantic's JSON mode writes without looking at a value's own type: a schema made only of them
# (with no custom serializer) never turns an inferred NaN or ±Infinity into None.
_DECLARED_TYPES = frozenset(
    {"float", "int", "str", "bool", "none", "list", "tuple", "set", "frozenset", "dict", "nullable", "union",
     "literal", "enum", "datetime", "date", "time", "timedelta", "uuid", "decimal"}
)  # fmt: skip
_LONG_INTEGER = re.compile(rb"(?<![\d.eE+-])-?\d{19,}(?![\d.eE])")  # an integer token of 19 digits or more


class Codec(Protocol):
    """Decodes one JSON value into a typed Python value, encodes a result, describes itself.

    ``annotation`` is what pydantic validates a request's JSON against (and documents in OpenAPI);
    ``json_schema()`` is BentoML's description in ``/schema.json``.
    """

    @property
    def annotation(self) -> Any: ...
    def decode(self, value: Any, field: str) -> Any: ...
    def encode(self, value: Any) -> Any: ...
    def check(self, value: Any) -> None: ...
    def json_schema(self) -> dict[str, Any]: ...


def _holds_booleans(dumped: bytes) -> bool:
    """Whether nested lists that numpy read as numbers held a bool: their JSON, written in C, says so."""
    return b"true" in dumped or b"false" in dumped


def _integers_beyond_int64(dumped: bytes) -> list[int]:
    """The integers in JSON text that int64 cannot hold (a 19-digit run is where they start)."""
    return [int(token) for token in _LONG_INTEGER.findall(dumped) if not -(2**63) <= int(token) < 2**63]


@dataclass(frozen=True)
class TensorCodec:
    """numpy arrays and torch tensors, sent as (nested) JSON lists of numbers; ``spec`` is what the hint
    declares (``Annotated[np.ndarray, Shape((-1, 4)), DType("float32")]``)."""

    framework: str  # "numpy" or "torch"
    spec: TensorSpec = field(default_factory=TensorSpec)

    @property
    def annotation(self) -> Any:
        """Any JSON value, documented as an array: ``decode`` checks it."""
        schema = {"type": "array", "items": {}, "description": f"{TENSOR_FORMATS[self.framework]} as nested lists"}
        return Annotated[Any, WithJsonSchema(schema)]

    def decode(self, value: Any, field: str) -> Any:
        try:
            array = np.asarray(value)
        except (ValueError, TypeError) as exc:
            raise InvalidInput(field, f"expected a rectangular array of numbers ({exc})") from None
        if isinstance(value, list) and array.dtype.kind in "iufO" and array.size:
            try:
                dumped = orjson.dumps(value)
            except TypeError:  # an integer beyond 64 bits, which orjson refuses
                dumped = pydantic_core.to_json(value)
            # numpy reads [1, true] as [1, 1]: JSON's booleans among numbers must not pass as numbers either.
            if array.dtype.kind != "O" and _holds_booleans(dumped):
                raise InvalidInput(field, "expected numbers, got booleans")
            array = self._exact_integers(array, value, _integers_beyond_int64(dumped), field)
        return self.from_array(array, field)

    def _exact_integers(self, array: np.ndarray, value: list[Any], beyond: list[int], field: str) -> np.ndarray:
        """``array``, unless JSON integers that int64 cannot hold made it floats or objects: those are a 400 naming
        the field, or, where uint64 is declared and they fit, an exact uint64 array."""
        if not beyond:
            return array
        if self.spec.dtype == "uint64" and all(0 <= n < 2**64 for n in beyond) and array.dtype.kind in "uf":
            try:
                return np.asarray(value, dtype=np.uint64) if array.dtype.kind == "f" else array
            except (OverflowError, ValueError, TypeError):
                pass
        raise InvalidInput(
            field, f"integer {beyond[0]} is beyond int64 (-2**63 to 2**63 - 1); a tensor holds no larger"
        )

    def from_array(self, array: np.ndarray, field: str, *, keep_dtype: bool = False) -> Any:
        """The handler's argument from the array that the JSON numbers make (a single number is refused).

        A torch tensor gets float32 for JSON's float64 numbers unless ``keep_dtype`` (a declared datatype).
        """
        if array.ndim == 0:
            raise InvalidInput(field, "expected an array of numbers, got a single value")
        if array.ndim > MAX_JSON_DIMS:  # on every route: what /docs.json and v2 metadata document
            raise InvalidInput(field, f"expected at most {MAX_JSON_DIMS} dimensions, got {array.ndim}")
        if array.dtype.kind not in _NUMERIC_KINDS:
            raise InvalidInput(field, f"expected numbers, got array of {array.dtype}")
        if array.dtype.kind == "b" and not keep_dtype and self.spec.dtype != "bool":
            raise InvalidInput(field, "expected numbers, got booleans")  # JSON's true and false (v2's BOOL is one)
        array = self.spec.apply(array, field)
        if self.framework == "numpy":
            return array
        import torch

        if array.dtype == np.float64 and not keep_dtype and self.spec.dtype is None:
            array = array.astype(np.float32)
        tensor = torch.from_numpy(array)
        return tensor.to(torch.bfloat16) if self.spec.dtype == bfloat16.NAME else tensor

    def encode(self, value: Any) -> Any:
        """A result as a numpy array (a torch bfloat16 tensor widened to float32, which holds it exactly); a 0-d
        one is the scalar it holds, as under any other hint."""
        if is_tensor_type(type(value)):
            value = tensor_as_array(value)
        if not isinstance(value, np.ndarray):
            self._refuse_non_numeric(value)
            return value
        if self.spec != TensorSpec():
            value = self._declared_result(value)
        return value[()] if value.ndim == 0 else np.ascontiguousarray(value)

    def _declared_result(self, array: np.ndarray) -> np.ndarray:
        """A result held to the declared shape and dtype, as v2 metadata states them: cast to the dtype when every
        value fits it (float64 to float32 rounds, as BentoML's and Triton's casts do), ResultMismatch naming the
        declared and the produced shape or dtype otherwise (a contradicting shape, 300 under int8, 1.5 under an
        integer dtype, a number beyond float32)."""
        if array.dtype.kind not in _NUMERIC_KINDS:
            return array  # check() refuses it
        try:
            return self.spec.apply(array, "", keep_infinities=True)
        except InvalidInput as exc:
            shape, dtype = self.spec.shape, self.spec.dtype
            declared = ", ".join(part for part in (shape and f"shape {shape}", dtype and f"dtype {dtype}") if part)
            raise ResultMismatch(
                f"its result (shape {array.shape}, dtype {array.dtype}) is not what its return hint declares"
                f" ({declared}): {exc.message}"
            ) from None

    def _refuse_non_numeric(self, value: Any) -> None:
        """ResultMismatch unless ``value`` (a result other than an array) reads as numbers: nested lists do, text
        or a dict does not."""
        try:
            kind = np.asarray(value).dtype.kind
        except (ValueError, TypeError):
            kind = "O"
        if kind not in _NUMERIC_KINDS:
            expected = TENSOR_FORMATS[self.framework]
            raise ResultMismatch(f"its result {_shown(value)} is no {expected}, as its return hint declares")

    def check(self, value: Any) -> None:
        """InvalidInput unless ``value`` (a result) is an array of numbers, as the schema declares; a 0-d array
        (written as the number it holds) is one, a plain number is not."""
        try:
            array = np.asarray(self.encode(value))
        except (ValueError, TypeError) as exc:
            raise InvalidInput("", f"expected a rectangular array of numbers ({exc})") from None
        if array.ndim == 0 and not (isinstance(value, np.ndarray) or is_tensor_type(type(value))):
            raise InvalidInput("", "expected an array of numbers, got a single value")
        if array.dtype.kind not in _NUMERIC_KINDS:
            raise InvalidInput("", f"expected numbers, got array of {array.dtype}")

    def json_schema(self) -> dict[str, Any]:
        """BentoML's description: the format, and the dtype and shape when declared."""
        schema: dict[str, Any] = {"type": "tensor", "format": TENSOR_FORMATS[self.framework]}
        if self.spec.dtype is not None:
            schema["dtype"] = self.spec.dtype
        if self.spec.shape is not None:
            schema["shape"] = list(self.spec.shape)
        return schema


@dataclass(frozen=True)
class PydanticCodec:
    """Every other hint (JSON types, str, pydantic models, typing generics), validated by pydantic."""

    hint: Any
    adapter: TypeAdapter[Any] = field(compare=False, repr=False)
    declared: bool = field(default=False, compare=False, repr=False)  # no part of the hint is inferred from values
    # the hint declares bytes somewhere: a model's own bytes are UTF-8 text in pydantic's JSON mode, so results go
    # through Python mode, then base64
    holds_bytes: bool = field(default=False, compare=False, repr=False)
    # a type only ``isinstance`` validates (arbitrary_types_allowed), as a dotted field and class: no JSON holds one
    arbitrary: tuple[str, type] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def for_hint(cls, hint: Any) -> PydanticCodec:
        try:
            adapter = _adapter(hint)
        except Exception as exc:
            tensor = _tensor_inside(hint)
            if tensor is not None:
                raise ServiceDefinitionError(
                    f"unsupported type hint {_name(hint)}: a {tensor} can only be a whole parameter or result, not"
                    f" inside a container; declare {tensor} itself (one array holds many; a default such as"
                    " `= None` makes a parameter optional) or nested lists of numbers (list[list[float]])"
                ) from None
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ServiceDefinitionError(f"unsupported type hint {_name(hint)}: {first_line}") from None
        core = adapter.core_schema
        return cls(hint, adapter, _declared(core), _holds_bytes(core), arbitrary_field(core))

    @property
    def annotation(self) -> Any:
        return self.hint

    def decode(self, value: Any, field: str) -> Any:
        """Validated as strictly as the JSON of ``value`` would be in a request body."""
        try:
            return self.adapter.validate_json(pydantic_core.to_json(value), strict=True)
        except ValidationError as exc:
            raise invalid_input(exc, field) from None

    def encode(self, value: Any) -> Any:
        """JSON-ready data; numpy and torch values anywhere in ``value`` become plain numbers and lists, NaN and
        ±Infinity the strings ``json_values`` names (here or when ``json_values.dumps`` writes them), under any hint.
        ResultMismatch when ``value`` is not what the hint declares (numpy and torch values, 0-d arrays included,
        counting as the Python numbers they hold).

        pydantic's serializer checks each value against the hint as it writes it (``warnings="error"``): a value
        it takes is written at once; only one it refuses (numpy values, a wrong type) takes the careful path.
        pydantic's JSON mode makes a float it infers (in a ``dict``, ``Any``, a model's own serializer) ``None``:
        only a hint with such parts is written once more to look for a ``null``; a fully declared one (``float``,
        ``list[float]``, ``dict[str, int]``) keeps its floats, and its one writer is ``json_values.dumps``."""
        if self.holds_bytes:
            return self._encode_checked(value)
        try:  # the serializer itself: TypeAdapter.dump_python's wrapper costs a quarter of a microsecond more
            encoded = self.adapter.serializer.to_python(value, mode="json", warnings="error")
        except (pydantic_core.PydanticSerializationError, UnicodeDecodeError):  # numpy, a mismatch, non-UTF-8 bytes
            return self._encode_checked(value)
        self._refuse_unwritten(value)
        if self.declared:
            return encoded
        try:
            written = orjson.dumps(encoded, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)
        except TypeError:  # an integer beyond 64 bits, which orjson refuses: the careful path keeps it exact
            written = b"null"
        if b"null" in written:
            return self._encode_checked(value)  # a null may be a NaN pydantic dropped: write it again
        return encoded

    def _encode_checked(self, value: Any) -> Any:
        """numpy and torch values made Python numbers and lists, checked against the hint (ResultMismatch), then
        the hint's Python form, non-finite floats made strings, and JSON mode for the rest (datetimes, UUIDs)."""
        plain = json_ready(value, non_finite_as_strings=False)
        try:
            if self.declared and not self.holds_bytes:  # its JSON mode keeps floats, NaN too: dumps writes them
                encoded = self.adapter.serializer.to_python(plain, mode="json", warnings="error")
                self._refuse_unwritten(plain)
                return encoded
            python = self.adapter.serializer.to_python(plain, warnings="error")
            self._refuse_unwritten(plain)
        except pydantic_core.PydanticSerializationError:
            self._refuse_mismatch(plain)
            self._refuse_unwritten(plain)
            try:
                python = self.adapter.dump_python(plain, warnings=False)
            except pydantic_core.PydanticSerializationError:
                python = plain
        return _ANY.dump_python(json_ready(python), mode="json", warnings=False)

    def _refuse_unwritten(self, value: Any) -> None:
        """ResultMismatch for what pydantic's serializer writes without a warning though the hint does not hold it:
        ``None`` in a place that is not Optional, a value outside a ``Literal``, a TypedDict missing a required key
        (pydantic's validator, lax as a request's Python is, judges it: 30 ns for a float, 6 us for 1000 of them),
        and a bool as a whole ``-> float`` or bytes as a whole ``-> str`` (which lax validation takes)."""
        if self.arbitrary is not None or self.hint is Any:
            return
        try:
            self.adapter.validator.validate_python(value)
        except ValidationError as exc:
            try:  # a whole float is an int, however large (pydantic's int takes none beyond 64 bits)
                self.adapter.validator.validate_python(_whole_floats_as_ints(value))
            except ValidationError:
                raise _result_mismatch(_name(self.hint), value, exc) from None
        if (self.hint is float and isinstance(value, (bool, np.bool_))) or (
            self.hint is str and isinstance(value, bytes)
        ):
            raise ResultMismatch(f"its result {_shown(value)} is no {_name(self.hint)}, as its return hint declares")

    def _refuse_mismatch(self, plain: Any) -> None:
        """ResultMismatch unless ``plain`` (a result made plain Python) is what the hint declares, judged as
        ``check`` judges it, except that a whole float is an ``int`` (``4.0`` under ``-> int``)."""
        problem = self._mismatch(_whole_floats_as_ints(plain))
        if problem is not None:
            raise _result_mismatch(_name(self.hint), plain, problem)

    def check(self, value: Any) -> None:
        """InvalidInput naming the dotted field unless ``value`` (a result) is what the hint declares, judged as
        strictly as a request's JSON is: its JSON as written without the hint (which would coerce: ``False`` to
        ``0`` for an ``int``), numpy values as numbers and lists, NaN and ±Infinity as numbers.

        Raises PydanticSerializationError for a value with no JSON form."""
        problem = self._mismatch(value)
        if problem is not None:
            raise invalid_input(problem) from None

    def _mismatch(self, value: Any) -> ValidationError | None:
        """What ``check`` finds wrong with ``value``, or None."""
        if self.hint is Any:
            return None
        try:
            if self.arbitrary is not None:  # only isinstance can tell: judged as the Python value it is
                self.adapter.validate_python(value)
            else:
                written = pydantic_core.to_json(value, inf_nan_mode="constants", bytes_mode="base64", fallback=_plain)
                self.adapter.validate_json(written, strict=True)
        except ValidationError as exc:
            return exc
        return None

    def json_schema(self) -> dict[str, Any]:
        return self.adapter.json_schema(schema_generator=ServiceJsonSchema)


def _adapter(hint: Any) -> TypeAdapter[Any]:
    """pydantic's adapter for ``hint``, writing and reading bytes as base64 (a model, dataclass or TypedDict keeps
    its own config: pydantic allows no other)."""
    try:
        return TypeAdapter(hint, config=BYTES_AS_BASE64)
    except PydanticUserError:
        return TypeAdapter(hint)


def _holds_bytes(schema: Any) -> bool:
    """Whether a core schema declares ``bytes`` anywhere (its definitions included)."""
    if isinstance(schema, dict):
        return schema.get("type") == "bytes" or any(_holds_bytes(v) for v in schema.values())
    if isinstance(schema, (list, tuple)):
        return any(_holds_bytes(item) for item in schema)
    return False


def _tensor_inside(hint: Any) -> str | None:
    """The name of a tensor type (``np.ndarray``, ``torch.Tensor``) nested anywhere in ``hint``, or None."""
    if hint is np.ndarray:
        return "np.ndarray"
    if is_tensor_type(hint):
        return "torch.Tensor"
    for arg in get_args(hint):
        found = _tensor_inside(arg)
        if found is not None:
            return found
    return None


def _name(hint: Any) -> str:
    """``hint`` as it is written in code (``list[np.ndarray]``, not ``list[numpy.ndarray]``)."""
    return (
        repr(hint)
        .replace("numpy.ndarray", "np.ndarray")
        .replace("typing.", "")
        .replace("<class '", "")
        .replace("'>", "")
    )


def _declared(schema: Any) -> bool:
    """Whether a core schema (or a list of them, or a union's ``(schema, label)`` choice) serializes every part by
    its declared type: only ``_DECLARED_TYPES``, no ``any``, no model or dataclass with its own serializer, no
    custom serializer."""
    if isinstance(schema, (list, tuple)):
        return all(_declared(item) for item in schema if not isinstance(item, str))
    if not isinstance(schema, dict) or schema.get("type") not in _DECLARED_TYPES or "serialization" in schema:
        return False
    children = (schema.get(key) for key in ("items_schema", "keys_schema", "values_schema", "schema", "choices"))
    return all(_declared(child) for child in children if child is not None)


def _whole_floats_as_ints(value: Any) -> Any:
    """``value`` (plain Python) with each finite whole float in its dicts and lists made an int."""
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    if isinstance(value, dict):
        return {key: _whole_floats_as_ints(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_whole_floats_as_ints(item) for item in value]
    return value


def _plain(value: Any) -> Any:
    """numpy and torch values as plain numbers and lists, for pydantic's JSON writer (which knows neither)."""
    plain = json_ready(value, non_finite_as_strings=False)
    if plain is value:
        raise TypeError(f"{type(value).__name__} has no JSON form")
    return plain


def _result_mismatch(expected: str, got: Any, error: ValidationError) -> ResultMismatch:
    """ResultMismatch saying what the hint declares, what came back, and where inside it pydantic found what."""
    problem = error.errors(include_url=False)[0]
    where = ".".join(str(part) for part in problem["loc"])
    inside = f" (at {where}: {problem['msg']}, got {problem['input']!r})" if where else f" ({problem['msg']})"
    return ResultMismatch(f"its result {_shown(got)} is no {expected}, as its return hint declares{inside}")


def _shown(value: Any) -> str:
    """``value``'s repr, cut to a line's worth."""
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def invalid_input(error: ValidationError, field: str = "") -> InvalidInput:
    """The first problem pydantic found, as InvalidInput naming its dotted path (an unknown field first)."""
    problems = sorted(error.errors(include_url=False), key=lambda e: e["type"] != "extra_forbidden")
    first = problems[0]
    where = ".".join([*([field] if field else []), *(str(part) for part in first["loc"])])
    return InvalidInput(where, first["msg"])


def codec_for(hint: Any) -> Codec:
    """The codec a parameter or return hint calls for; a tensor's ``Annotated`` metadata may declare its
    shape and dtype (``Shape``, ``DType``: ours or BentoML's)."""
    base, metadata = (get_args(hint)[0], get_args(hint)[1:]) if get_origin(hint) is Annotated else (hint, ())
    if base is np.ndarray:
        return TensorCodec("numpy", TensorSpec.from_metadata(metadata))
    if is_tensor_type(base):
        return TensorCodec("torch", TensorSpec.from_metadata(metadata))
    return PydanticCodec.for_hint(hint)
