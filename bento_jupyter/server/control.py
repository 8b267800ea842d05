"""A service's control surface: live stats and stop, answered by the server's own thread, so they work
while the kernel's main thread runs a cell.

The routes listen on a second socket bound to 127.0.0.1 (never the service's public one) and demand a
bearer token made when the service starts. The token and the control URL are written to a file only
this user can read (mode 0600) in Jupyter's runtime directory, where this user's Jupyter server finds
them (``bento_jupyter.labserver``); nobody else can read the token, so nobody else can stop the service.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson
from starlette.types import Receive, Scope, Send

from bento_jupyter.atomic import write_file
from bento_jupyter.processes import process_alive
from bento_jupyter.server import asgi_io
from bento_jupyter.server.http_errors import HTTPError, MethodNotAllowed, NotFound, Unauthorized

STATS_PATH = "/_bento/stats"
STOP_PATH = "/_bento/stop"
_FILE_PREFIX = "bento-service-"


def new_token() -> str:
    return secrets.token_urlsafe(32)


class ControlApp:
    """ASGI app of the control routes: ``GET /_bento/stats`` (the ``stats()`` dict) and ``POST /_bento/stop``
    (calls ``stop()``, which must not block: the answer goes out while the server shuts down). 401 without
    ``Authorization: Bearer TOKEN``; 404 and 405 as usual."""

    def __init__(self, token: str, stats: Callable[[], dict[str, Any]], stop: Callable[[], None]) -> None:
        self._expected = f"Bearer {token}".encode()
        self._stats = stats
        self._stop = stop

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        try:
            status, answer = self._answer(scope["path"], scope["method"], asgi_io.header(scope, b"authorization"))
        except HTTPError as error:
            await asgi_io.send_error(send, error)
        else:
            await asgi_io.send_bytes(send, status, orjson.dumps(answer))

    def _answer(self, path: str, method: str, authorization: bytes) -> tuple[int, dict[str, Any]]:
        routes = {STATS_PATH: "GET", STOP_PATH: "POST"}
        if path not in routes:
            raise NotFound(f"no control route {path}")
        if not hmac.compare_digest(authorization, self._expected):
            raise Unauthorized("missing or wrong control token")
        if method != routes[path]:
            raise MethodNotAllowed(f"{path} accepts {routes[path]} only", headers={"allow": routes[path]})
        if path == STATS_PATH:
            return 200, self._stats()
        self._stop()
        return 202, {"stopping": True}


@dataclass(frozen=True)
class ControlRecord:
    """What a Jupyter server needs to reach one service's control routes."""

    name: str
    kernel_id: str | None
    pid: int
    control_url: str
    token: str


def runtime_dir() -> Path:
    """Jupyter's runtime directory (``$JUPYTER_RUNTIME_DIR`` or the platform default)."""
    from jupyter_core.paths import jupyter_runtime_dir

    return Path(jupyter_runtime_dir())


def write_record(record: ControlRecord, directory: Path | None = None) -> Path:
    """Write ``record`` readable by this user only (created 0600, never widened); returns its path."""
    directory = directory or runtime_dir()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / f"{_FILE_PREFIX}{record.pid}-{record.name}.json"
    write_file(path, json.dumps(asdict(record)).encode())
    return path


def remove_record(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def read_records(directory: Path | None = None) -> Iterator[ControlRecord]:
    """The records of services whose kernel process lives; files left by dead processes are removed."""
    directory = directory or runtime_dir()
    for path in sorted(directory.glob(f"{_FILE_PREFIX}*.json")):
        try:
            if path.stat().st_uid != os.getuid():  # only this user's services
                continue
            record = ControlRecord(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            continue
        if process_alive(record.pid):
            yield record
        else:
            remove_record(path)
