"""Open Inference Protocol v2 (KServe's REST protocol) over a service: each API is a model of its name.

Probes and metadata answer from the definition (``open_inference_metadata``); ``infer`` turns v2 tensors into
the handler's arguments (a tensor parameter gets the declared datatype and shape), calls the API's own endpoint
(same admission, batching, errors and metrics), and answers v2 outputs in the datatype the handler produced.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
import pydantic_core
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bento_jupyter._version import __version__
from bento_jupyter.errors import InvalidInput
from bento_jupyter.server import open_inference_binary as binary_data
from bento_jupyter.server.asgi_io import client_gone, read_body
from bento_jupyter.server.endpoint import Endpoint
from bento_jupyter.server.http_errors import (
    BadRequest,
    ClientDisconnected,
    HTTPError,
    NotFound,
    bad_request,
    error_response,
    handler_failed,
)
from bento_jupyter.server.open_inference_metadata import (
    DATATYPES,
    NUMPY_TYPES,
    admits,
    as_metadata,
    input_metadata,
    output_metadata,
)
from bento_jupyter.server.samples import V2Route
from bento_jupyter.service import bfloat16
from bento_jupyter.service.codecs import TensorCodec
from bento_jupyter.service.definition import APIMethod, Param, ServiceDefinition
from bento_jupyter.service.json_values import dumps
from bento_jupyter.torch_probe import is_tensor

_PLATFORM = "bento_jupyter"
_JSON, _BINARY = b"application/json", b"application/octet-stream"


def _json(value: Any, status: int = 200) -> Response:
    return Response(dumps(value), status_code=status, media_type="application/json")


def _shape(tensor: dict[str, Any], field: str) -> list[int]:
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise InvalidInput(field, "shape must be a list of non-negative integers")
    return shape


def _array(tensor: dict[str, Any], field: str, raw: bytes | None) -> np.ndarray:
    """The tensor's data (``raw`` when sent as binary data) as an array of its declared datatype and shape
    (BYTES: an object array of str; BF16: float32 holding bfloat16 values)."""
    shape, datatype, data = _shape(tensor, field), tensor.get("datatype"), tensor.get("data")
    if datatype not in ("BYTES", "BF16") and datatype not in NUMPY_TYPES:
        raise InvalidInput(field, f"datatype {datatype!r} is not a v2 datatype")
    if raw is not None:
        return binary_data.from_bytes(raw, datatype, shape, NUMPY_TYPES.get(datatype), field).reshape(shape)
    if not isinstance(data, list):
        raise InvalidInput(field, "data must be a JSON list")
    try:
        flat = np.asarray(data, dtype=object).reshape(-1)
    except ValueError as exc:
        raise InvalidInput(field, f"data must be a flat or rectangular list: {exc}") from None
    if datatype == "BYTES":
        if not all(isinstance(item, str) for item in flat):
            raise InvalidInput(field, "BYTES data must be strings")
        array = flat
    else:
        if not all(isinstance(item, (int, float)) for item in flat):
            raise InvalidInput(field, f"{datatype} data must be numbers")
        try:
            array = flat.astype(NUMPY_TYPES.get(datatype, "float32"))
        except (TypeError, ValueError, OverflowError) as exc:
            raise InvalidInput(field, f"data does not fit datatype {datatype}: {exc}") from None
        if datatype == "BF16":
            array = bfloat16.round_to_bfloat16(array)
    if array.size != math.prod(shape):
        raise InvalidInput(field, f"data holds {array.size} values but shape {shape} needs {math.prod(shape)}")
    return array.reshape(shape)


def _argument(param: Param, tensor: dict[str, Any], raw: bytes | None) -> Any:
    """The handler's argument for ``param`` from one v2 input tensor.

    A tensor parameter gets the array in the declared datatype and shape. Any other parameter gets the
    JSON value the tensor stands for, validated as in a request body: a list for an array type, else the
    tensor's one element (a type that also admits a list, ``Any``, takes the nested list of any other shape).
    A BYTES element is the raw UTF-8 string when the parameter's type (a list's item type) admits a string
    (``str``, ``Optional[str]``, ``Union[int, str]``, a ``Literal`` or enum of strings), else JSON text (``Any``
    and un-annotated parameters too: they take any JSON value).
    """
    field = param.name
    array = _array(tensor, field, raw)
    if isinstance(param.codec, TensorCodec):
        argument = param.codec.from_array(array, field, keep_dtype=True)
        if tensor.get("datatype") == "BF16" and param.codec.spec.dtype is None and is_tensor(argument):
            import torch  # loaded: the argument is a tensor

            argument = argument.to(torch.bfloat16)
        return argument
    schema = param.codec.json_schema()
    is_list = schema.get("type") == "array"
    item = schema.get("items", {}) if is_list else schema
    is_text = bool(item) and admits(item, "string", schema.get("$defs"))  # Any (no schema): JSON text, any value
    if not is_list and (array.size == 1 or not admits(schema, "array")):
        if array.size != 1:
            raise InvalidInput(field, f"expected one element, got {array.size}")
        array = array.reshape(())
    values = array.tolist()  # plain Python values, nested as the shape says
    if array.dtype == object and not is_text:
        try:
            values = _parse_json_text(values)
        except ValueError as exc:
            raise InvalidInput(field, f"BYTES elements must be JSON text for this input: {exc}") from None
    return param.codec.decode(values, field)


def _parse_json_text(values: Any) -> Any:
    if isinstance(values, list):
        return [_parse_json_text(item) for item in values]
    return pydantic_core.from_json(values)


def _output(name: str, value: Any) -> dict[str, Any]:
    """One v2 output tensor from an API's encoded result, in the datatype the handler produced: an array's
    own dtype, that of a list of numbers, strings or booleans; anything else one BYTES element of JSON text."""
    if isinstance(value, str):
        return {"name": name, "datatype": "BYTES", "shape": [1], "data": [value]}
    try:
        array = value if isinstance(value, np.ndarray) else np.asarray(value)
    except (ValueError, OverflowError):  # a ragged list, an integer beyond 64 bits
        array = np.asarray(None)
    if array.dtype in DATATYPES:
        return {"name": name, "datatype": DATATYPES[array.dtype], "shape": list(array.shape), "data": array.ravel()}
    if array.dtype.kind == "U":
        return {"name": name, "datatype": "BYTES", "shape": list(array.shape), "data": array.ravel().tolist()}
    return {"name": name, "datatype": "BYTES", "shape": [1], "data": [dumps(value).decode()]}


class OpenInference:
    """The v2 routes of one service; ``definition`` is read per request, so hot swaps show at once.

    ``endpoint`` gives the endpoint serving an API's route now: ``infer`` calls it with decoded arguments
    (``Endpoint.infer``) and keeps the exchange among its samples. A model's output in its metadata has the
    datatype and shape its return hint declares; what the hint leaves open is the last answer's on any route
    (its datatype, its rank with every size -1), or before any answer a stated default
    (``open_inference_metadata.output_metadata``).
    """

    def __init__(
        self,
        definition: Callable[[], ServiceDefinition],
        endpoint: Callable[[str], Endpoint],
        max_body: Callable[[], int],
    ) -> None:
        self._definition = definition
        self._endpoint = endpoint
        self._max_body = max_body  # bytes a request body may hold (decompressed)
        self._produced: dict[str, dict[str, Any]] = {}  # model -> datatype and rank (sizes -1) of its last output
        self._last_shape: dict[str, list[int]] = {}  # model -> its last non-empty output's shape
        self._learned: dict[str, Any] = {}  # model -> the answer _produced was last learned from

    def _produced_by(self, method: APIMethod) -> dict[str, Any] | None:
        """The datatype and rank of the model's last non-empty answer, whichever route gave it (its own JSON
        route, a task, v2)."""
        latest = self._endpoint(method.route).last_answer
        if latest is not None and latest is not self._learned.get(method.name):
            self._learned[method.name] = latest
            self._learn(method.name, _output("output", latest))
        return self._produced.get(method.name)

    def _learn(self, name: str, output: dict[str, Any]) -> None:
        if 0 not in output["shape"]:  # an empty answer's datatype and rank say nothing (JSON's [] is FP64 [0])
            self._produced[name] = {"datatype": output["datatype"], "shape": [-1] * len(output["shape"])}
            self._last_shape[name] = output["shape"]

    @property
    def routes(self) -> list[Route]:
        return [
            Route("/v2", self.server_metadata),
            Route("/v2/health/live", self.live),
            Route("/v2/health/ready", self.ready),
            Route("/v2/models/{name}", self.model_metadata),
            Route("/v2/models/{name}/ready", self.model_ready),
            Route("/v2/models/{name}/infer", self.infer, methods=["POST"]),
        ]

    def _model(self, name: str) -> APIMethod | None:
        return next((m for m in self._definition().apis.values() if m.name == name and not m.is_stream), None)

    def _unknown(self, name: str) -> Response:
        models = ", ".join(m.name for m in self._definition().apis.values() if not m.is_stream)
        return error_response(NotFound(f"unknown model {name!r}; models: {models}"))

    async def server_metadata(self, _: Request) -> Response:
        extensions = [binary_data.EXTENSION]
        return _json({"name": self._definition().name, "version": __version__, "extensions": extensions})

    async def live(self, _: Request) -> Response:
        return _json({"live": True})

    async def ready(self, _: Request) -> Response:
        return _json({"ready": True})

    async def model_ready(self, request: Request) -> Response:
        name = request.path_params["name"]
        return _json({"name": name, "ready": True}) if self._model(name) else self._unknown(name)

    async def model_metadata(self, request: Request) -> Response:
        name = request.path_params["name"]
        method = self._model(name)
        if method is None:
            return self._unknown(name)
        output = output_metadata(method.output, self._produced_by(method))
        inputs = [input_metadata(p.name, p.codec) for p in method.params]
        return _json(
            {
                "name": name,
                "versions": [],
                "platform": _PLATFORM,
                "inputs": inputs,
                "outputs": [output],
            }
        )

    async def infer(self, request: Request) -> Response:
        name = request.path_params["name"]
        method = self._model(name)
        if method is None:
            return self._unknown(name)
        try:
            length = request.headers.get(binary_data.HEADER_LENGTH)
            body = await read_body(request.scope, request.receive, self._max_body())
            header, binary = binary_data.split_body(body, length)
            sent = V2Route(request.url.path, None if length is None else len(header))  # how to replay it
            request_body = orjson.loads(header)
            kwargs = self._arguments(method, request_body, binary)
            binary_output = self._binary_output(method, request_body)
        except orjson.JSONDecodeError as exc:
            return error_response(BadRequest(f"request body is not valid JSON: {exc}"))
        except InvalidInput as exc:
            return error_response(bad_request(exc))
        except HTTPError as error:  # a body too large, in an unknown coding; an argument's own validator failing
            return error_response(error)
        gone = functools.partial(client_gone, request.receive)
        endpoint = self._endpoint(method.route)
        try:
            result = await endpoint.infer(kwargs, request.scope, gone)
            metadata = output_metadata(method.output, self._produced_by(method))
            output = _output("output", result)
            exact = isinstance(result, np.ndarray | np.generic)
            as_metadata(output, metadata, self._last_shape.get(name), method.config.batch_dim, exact)
        except HTTPError as error:
            return error_response(error)
        except ClientDisconnected:  # dropped before it was computed, counted as cancelled: nobody to answer
            return Response(status_code=499)
        self._learn(name, output)
        raw = b""
        if binary_output:
            raw = binary_data.to_bytes(output["datatype"], output.pop("data"), NUMPY_TYPES.get(output["datatype"]))
            output["parameters"] = {"binary_data_size": len(raw)}
        answer = {"model_name": name, "outputs": [output]}
        if isinstance(request_body.get("id"), str):
            answer["id"] = request_body["id"]
        if not binary_output:  # kept for a build to replay, as the API's own route keeps its exchanges
            output["data"] = binary_data.json_data(output["data"])
            header = dumps(answer)
            endpoint.samples.record(body, header, _JSON, sent)
            return Response(header, media_type="application/json")
        header = dumps(answer)
        endpoint.samples.record(body, header + raw, _BINARY, dataclasses.replace(sent, response_header=len(header)))
        return Response(
            header + raw,
            media_type="application/octet-stream",
            headers={binary_data.HEADER_LENGTH: str(len(header))},
        )

    @staticmethod
    def _binary_output(method: APIMethod, request: dict[str, Any]) -> bool:
        """Whether the one output goes as binary data; an output the model does not have is refused by name."""
        outputs = request.get("outputs")
        if outputs is not None and (not isinstance(outputs, list) or not all(isinstance(o, dict) for o in outputs)):
            raise InvalidInput("outputs", "expected a list of requested outputs {name, parameters}")
        for requested in outputs or []:
            if requested.get("name") != "output":
                raise InvalidInput(str(requested.get("name")), f"unexpected output; {method.name} answers 'output'")
        return binary_data.wants_binary(request, "output")

    @staticmethod
    def _arguments(method: APIMethod, request: Any, binary: bytes) -> dict[str, Any]:
        """The handler's arguments from v2 ``inputs`` (their data JSON, or ``binary`` in order); unknown, missing
        or malformed tensors are refused by name."""
        inputs = request.get("inputs") if isinstance(request, dict) else None
        if not isinstance(inputs, list) or not all(isinstance(t, dict) for t in inputs):
            raise InvalidInput("inputs", "expected a list of tensors {name, shape, datatype, data}")
        params = {p.name: p for p in method.params}
        kwargs = {}
        for tensor, raw in zip(inputs, list(binary_data.chunks(inputs, binary)), strict=True):
            param = params.get(tensor.get("name"))
            if param is None:
                raise InvalidInput(str(tensor.get("name")), f"unexpected input; {method.name} takes {sorted(params)}")
            try:
                kwargs[param.name] = _argument(param, tensor, raw)
            except InvalidInput:
                raise
            except BaseException as exc:  # a validator of the API's own types failed (SystemExit too): a 500
                raise handler_failed(method.name, exc, "validating the arguments") from exc
        for param in method.params:
            if param.name not in kwargs:
                if param.required:
                    raise InvalidInput(param.name, "input required")
                kwargs[param.name] = param.default
        return kwargs
