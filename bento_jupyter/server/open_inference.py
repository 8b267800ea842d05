"""Open Inference Protocol v2 (KServe's REST protocol) over a service: each API is a model of its name.

Probes and metadata answer from the definition; ``infer`` turns v2 tensors into the API's JSON request,
sends it through the service's own endpoint (same validation, batching and metrics), and returns the
answer as v2 outputs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message

from bento_jupyter import __version__
from bento_jupyter.errors import InvalidInput
from bento_jupyter.service.codecs import TensorCodec
from bento_jupyter.service.definition import APIMethod, Param, ServiceDefinition

# v2 datatypes <-> numpy dtypes; BYTES carries strings (UTF-8 text in JSON).
_NUMPY_TYPES = {
    "BOOL": "bool",
    "UINT8": "uint8",
    "UINT16": "uint16",
    "UINT32": "uint32",
    "UINT64": "uint64",
    "INT8": "int8",
    "INT16": "int16",
    "INT32": "int32",
    "INT64": "int64",
    "FP16": "float16",
    "FP32": "float32",
    "FP64": "float64",
}
_DATATYPES = {np.dtype(numpy): v2 for v2, numpy in _NUMPY_TYPES.items()}
_PLATFORM = "bento_jupyter"


def _error(status: int, message: str, field: str | None = None) -> JSONResponse:
    return JSONResponse({"error": message, **({"field": field} if field else {})}, status_code=status)


def _tensor_metadata(name: str, codec: Any) -> dict[str, Any]:
    """Rank is not declared by type hints: shape ``[-1]`` stands for "any"."""
    datatype = "FP32" if isinstance(codec, TensorCodec) else "BYTES"
    return {"name": name, "datatype": datatype, "shape": [-1]}


def _shape(tensor: dict[str, Any], field: str) -> list[int]:
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise InvalidInput(field, "shape must be a list of non-negative integers")
    return shape


def _decode_input(param: Param, tensor: dict[str, Any]) -> Any:
    """The JSON value the API expects for ``param`` from one v2 input tensor."""
    field = param.name
    shape, datatype, data = _shape(tensor, field), tensor.get("datatype"), tensor.get("data")
    if not isinstance(data, list):
        raise InvalidInput(field, "data must be a JSON list")
    flat = np.asarray(data, dtype=object).reshape(-1) if data else np.asarray([], dtype=object)
    if flat.size != math.prod(shape):
        raise InvalidInput(field, f"data holds {flat.size} values but shape {shape} needs {math.prod(shape)}")
    if isinstance(param.codec, TensorCodec):
        if datatype not in _NUMPY_TYPES:
            raise InvalidInput(field, f"datatype {datatype!r} is not a numeric v2 datatype")
        try:
            return flat.astype(_NUMPY_TYPES[datatype]).reshape(shape).tolist()
        except (TypeError, ValueError) as exc:
            raise InvalidInput(field, f"data does not match datatype {datatype}: {exc}") from None
    if datatype != "BYTES":
        raise InvalidInput(field, f"datatype must be BYTES for a {param.codec.json_schema().get('type')} input")
    values = flat.tolist()
    schema = param.codec.json_schema()
    if schema.get("type") == "array":
        return np.asarray(values, dtype=object).reshape(shape).tolist() if len(shape) > 1 else values
    if len(values) != 1:
        raise InvalidInput(field, f"expected one element, got {len(values)}")
    return values[0]


def _output(name: str, value: Any) -> dict[str, Any]:
    """One v2 output tensor from an API's JSON answer (anything not an array of numbers or strings: JSON text)."""
    if isinstance(value, str):
        return {"name": name, "datatype": "BYTES", "shape": [1], "data": [value]}
    try:
        array = np.asarray(value)
    except ValueError:  # a ragged list
        array = np.asarray(None)
    if array.dtype.kind in "biuf":
        datatype = _DATATYPES[array.dtype]
        return {"name": name, "datatype": datatype, "shape": list(array.shape), "data": array.ravel().tolist()}
    if array.dtype.kind == "U":
        return {"name": name, "datatype": "BYTES", "shape": list(array.shape), "data": array.ravel().tolist()}
    return {"name": name, "datatype": "BYTES", "shape": [1], "data": [orjson.dumps(value).decode()]}


async def _call(app: ASGIApp, route: str, body: bytes) -> tuple[int, bytes, str]:
    """POST ``body`` to ``route`` of ``app`` in-process; return status, body and content type."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": route,
        "raw_path": route.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
    }
    sent = False
    status, chunks, media = 500, [], ""

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        nonlocal status, media
        if message["type"] == "http.response.start":
            status = message["status"]
            media = dict(message.get("headers", [])).get(b"content-type", b"").decode()
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks), media


class OpenInference:
    """The v2 routes of one service; ``definition`` is read per request, so hot swaps show at once."""

    def __init__(self, definition: Callable[[], ServiceDefinition], app: ASGIApp) -> None:
        self._definition = definition
        self._app = app

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
        return next((m for m in self._definition().apis.values() if m.name == name), None)

    def _unknown(self, name: str) -> JSONResponse:
        models = ", ".join(m.name for m in self._definition().apis.values())
        return _error(404, f"unknown model {name!r}; models: {models}")

    async def server_metadata(self, _: Request) -> Response:
        return JSONResponse({"name": self._definition().name, "version": __version__, "extensions": []})

    async def live(self, _: Request) -> Response:
        return JSONResponse({"live": True})

    async def ready(self, _: Request) -> Response:
        return JSONResponse({"ready": True})

    async def model_ready(self, request: Request) -> Response:
        name = request.path_params["name"]
        return JSONResponse({"name": name, "ready": True}) if self._model(name) else self._unknown(name)

    async def model_metadata(self, request: Request) -> Response:
        name = request.path_params["name"]
        method = self._model(name)
        if method is None:
            return self._unknown(name)
        return JSONResponse(
            {
                "name": name,
                "versions": [],
                "platform": _PLATFORM,
                "inputs": [_tensor_metadata(p.name, p.codec) for p in method.params],
                "outputs": [_tensor_metadata("output", method.output)],
            }
        )

    async def infer(self, request: Request) -> Response:
        name = request.path_params["name"]
        method = self._model(name)
        if method is None:
            return self._unknown(name)
        try:
            request_body = orjson.loads(await request.body())
            payload = self._payload(method, request_body)
        except orjson.JSONDecodeError as exc:
            return _error(400, f"request body is not valid JSON: {exc}")
        except InvalidInput as exc:
            return _error(400, exc.message, exc.field or None)
        status, body, media = await _call(self._app, method.route, orjson.dumps(payload))
        if status != 200:
            return Response(body, status_code=status, media_type=media or "application/json")
        value = body.decode() if media.startswith("text/plain") else orjson.loads(body)
        answer = {"model_name": name, "outputs": [_output("output", value)]}
        if isinstance(request_body.get("id"), str):
            answer["id"] = request_body["id"]
        return JSONResponse(answer)

    @staticmethod
    def _payload(method: APIMethod, request: Any) -> dict[str, Any]:
        """The API's JSON request from v2 ``inputs``; unknown or malformed tensors are refused by name."""
        inputs = request.get("inputs") if isinstance(request, dict) else None
        if not isinstance(inputs, list) or not all(isinstance(t, dict) for t in inputs):
            raise InvalidInput("inputs", "expected a list of tensors {name, shape, datatype, data}")
        params = {p.name: p for p in method.params}
        payload = {}
        for tensor in inputs:
            param = params.get(tensor.get("name"))
            if param is None:
                raise InvalidInput(str(tensor.get("name")), f"unexpected input; {method.name} takes {sorted(params)}")
            payload[param.name] = _decode_input(param, tensor)
        return payload
