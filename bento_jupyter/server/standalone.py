"""Serve a bento in its own process (``bento-jupyter serve``), optionally with several workers."""

from __future__ import annotations

import os
from pathlib import Path

import uvicorn
from uvicorn.supervisors import Multiprocess

from bento_jupyter.bento.loader import load_bento
from bento_jupyter.server.app import ServiceApp
from bento_jupyter.sockets import bind_socket

_ROOT_VARIABLE = "BENTO_JUPYTER_SERVE_ROOT"


def app_from_environment() -> ServiceApp:
    """uvicorn factory for worker processes: the bento named by ``$BENTO_JUPYTER_SERVE_ROOT``."""
    definition, _ = load_bento(Path(os.environ[_ROOT_VARIABLE]))
    return ServiceApp(definition)


def serve_bento(root: Path, host: str, port: int, workers: int = 1) -> None:
    """Load (and verify) the bento, bind, and serve until interrupted."""
    definition, manifest = load_bento(root)  # fail here, before binding, if the bento is broken
    sock = bind_socket(host, port)
    shown = f"[{host}]" if ":" in host else host
    print(
        f"serving {manifest['name']} ({manifest['digest'][:19]}) at http://{shown}:{sock.getsockname()[1]}", flush=True
    )
    options = {"lifespan": "off", "access_log": False, "http": "httptools", "log_level": "warning"}
    if workers > 1:
        os.environ[_ROOT_VARIABLE] = str(root.resolve())
        config = uvicorn.Config(f"{__name__}:app_from_environment", factory=True, workers=workers, **options)
        # The supervisor hands our bound TCP socket to every worker (TCP_NODELAY stays on).
        Multiprocess(config, sockets=[sock]).run()
    else:
        uvicorn.Server(uvicorn.Config(ServiceApp(definition), **options)).run(sockets=[sock])
