"""Raw ASGI reading and writing for the request hot path (no per-request framework objects)."""

from __future__ import annotations

import zlib
from collections.abc import Coroutine
from typing import Any

from starlette.types import Receive, Scope, Send

from bento_jupyter.server.http_errors import BadRequest, HTTPError, Overloaded, PayloadTooLarge, UnsupportedMediaType

_JSON = b"application/json"
# curl's -d default is form-encoded; accept its JSON body so the one-liner in the docs works.
_ACCEPTED_TYPES = (b"", b"application/json", b"application/x-www-form-urlencoded")
# Content-Encoding of request bodies, as Triton takes them (tritonclient's request_compression_algorithm);
# zlib's window bits 32 + 15 read a gzip or a zlib ("deflate" in HTTP) stream.
_CODINGS = {b"gzip": 47, b"x-gzip": 47, b"deflate": 47}


def header(scope: Scope, name: bytes) -> bytes:
    for key, value in scope["headers"]:
        if key == name:
            return value
    return b""


def check_json_request(scope: Scope) -> None:
    """Refuse with 415 a request body that does not claim to be JSON."""
    content_type = header(scope, b"content-type").split(b";", 1)[0].strip().lower()
    if content_type not in _ACCEPTED_TYPES:
        raise UnsupportedMediaType(
            f"unsupported content type {content_type.decode(errors='replace')!r}: send application/json"
        )


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole request body, refusing more than ``limit`` bytes with 413, sent or (gzip, deflate) decompressed."""
    body = await _read(scope, receive, limit)
    coding = header(scope, b"content-encoding")
    return decoded(body, coding, limit) if coding else body


def decoded(body: bytes, coding: bytes, limit: int) -> bytes:
    """``body`` as it was before its ``Content-Encoding`` (gzip, deflate or identity): PayloadTooLarge (413) past
    ``limit`` bytes decompressed (a gzip bomb stops there), UnsupportedMediaType (415) naming another coding,
    BadRequest (400) for a stream that is not what it says."""
    coding = coding.strip().lower()
    if coding == b"identity":
        return body
    wbits = _CODINGS.get(coding)
    name = coding.decode(errors="replace")
    if wbits is None:
        raise UnsupportedMediaType(f"unsupported content encoding {name!r}: send gzip, deflate or identity")
    inflater = zlib.decompressobj(wbits)
    try:
        plain = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise BadRequest(f"request body is not valid {name}: {exc}") from None
    if len(plain) > limit:
        raise PayloadTooLarge(f"request body exceeds the {limit}-byte limit once decompressed ({name})")
    if not inflater.eof:
        raise BadRequest(f"request body is not valid {name}: the stream is truncated")
    return plain


async def _read(scope: Scope, receive: Receive, limit: int) -> bytes:
    declared = header(scope, b"content-length")
    if declared and int(declared) > limit:
        raise PayloadTooLarge(f"request body of {int(declared)} bytes exceeds the {limit}-byte limit")
    message = await receive()
    body = message.get("body", b"")
    if not message.get("more_body"):
        return body
    chunks = [body]
    size = len(body)
    while message.get("more_body"):
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


async def send_bytes(
    send: Send, status: int, body: bytes, media_type: bytes = _JSON, extra: dict[str, str] | None = None
) -> None:
    headers = [(b"content-type", media_type), (b"content-length", str(len(body)).encode())]
    if extra:
        headers.extend((k.encode(), v.encode()) for k, v in extra.items())
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def send_error(send: Send, error: HTTPError) -> None:
    await send_bytes(send, error.status, error.body(), extra=error.headers)


_refusals: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}


async def send_refusal(send: Send, refusal: Overloaded) -> None:
    """A 503 from messages built once per ``Retry-After`` value: refusing must cost next to nothing."""
    retry_after = refusal.headers["retry-after"]
    messages = _refusals.get(retry_after)
    if messages is None:
        body = refusal.body()
        head = [
            (b"content-type", _JSON),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", retry_after.encode()),
        ]
        messages = _refusals[retry_after] = (
            {"type": "http.response.start", "status": 503, "headers": head},
            {"type": "http.response.body", "body": body},
        )
    await send(messages[0])
    await send(messages[1])


def client_gone(receive: Receive) -> bool:
    """Whether the client has disconnected, asked without waiting (the request body already read).

    Servers deliver ``http.disconnect`` from ``receive()`` without suspending once the connection is
    lost; while it is alive, ``receive()`` would wait, so the call is abandoned at its first suspension.
    """
    pending = receive()
    if not isinstance(pending, Coroutine):  # no way to ask without waiting
        return False
    try:
        pending.send(None)
    except StopIteration as done:
        return bool(done.value and done.value.get("type") == "http.disconnect")
    pending.close()
    return False
