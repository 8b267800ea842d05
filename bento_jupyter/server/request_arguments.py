"""An API's keyword arguments from a JSON request body: the one decode of its route, its stream and its tasks.

A value is parsed and validated alike whichever way the API answers (one result, a stream of items, a task
stored for later), so the same body gets the same arguments or the same 400 naming the field at fault.
"""

from __future__ import annotations

from typing import Any

from bento_jupyter.errors import InvalidInput
from bento_jupyter.server.http_errors import bad_request, handler_failed
from bento_jupyter.server.json_tensor import TensorBodyReader
from bento_jupyter.service.codecs import TensorCodec
from bento_jupyter.service.definition import APIMethod


class ArgumentDecoder:
    """Decodes request bodies for one APIMethod; use from one thread only (the server's loop): an API of one
    tensor reads a plain ``{name: array}`` body straight into numpy (``TensorBodyReader``, which reads exactly
    what the general path reads, or steps aside)."""

    def __init__(self, method: APIMethod) -> None:
        self._method = method
        codec = method.params[0].codec if len(method.params) == 1 else None
        self._tensor_codec = codec if isinstance(codec, TensorCodec) else None
        self._tensor_name = method.params[0].name if self._tensor_codec is not None else ""
        self._tensor_body = TensorBodyReader(self._tensor_name) if self._tensor_codec is not None else None

    def decode(self, raw: bytes) -> dict[str, Any]:
        """The handler's keyword arguments from the request body; BadRequest names the field at fault;
        HandlerFailed (500) when a validator of its own types raises anything but a validation error."""
        array = self._tensor_body.read(raw) if self._tensor_body is not None else None
        try:
            if array is not None and self._tensor_codec is not None:
                return {self._tensor_name: self._tensor_codec.from_array(array, self._tensor_name)}
            return self._method.decode(raw)
        except InvalidInput as exc:
            raise bad_request(exc) from None
        except BaseException as exc:  # a validator of the API's own types failed (SystemExit too): a 500
            raise handler_failed(self._method.name, exc, "validating the arguments") from exc
