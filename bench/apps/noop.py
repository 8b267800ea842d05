"""A bare ASGI app that reads the body and answers a constant: uvicorn's HTTP ceiling on this machine."""

from __future__ import annotations

from typing import Any

_BODY = b"[[0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0]]"
_HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(_BODY)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": _BODY})
