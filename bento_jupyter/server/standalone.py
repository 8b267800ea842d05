"""Serve a bento in its own process (``bento-jupyter serve``), optionally with several workers."""

from __future__ import annotations

import os
from pathlib import Path

import uvicorn
from uvicorn.supervisors import Multiprocess

from bento_jupyter.bento.loader import load_bento
from bento_jupyter.bento.trust import TrustPolicy
from bento_jupyter.server.app import ServiceApp
from bento_jupyter.sockets import bind_socket

_ROOT_VARIABLE = "BENTO_JUPYTER_SERVE_ROOT"
_DIGEST_VARIABLE = "BENTO_JUPYTER_SERVE_DIGEST"  # the manifest the supervisor loaded, so trusted, if it was


def app_from_environment() -> ServiceApp:
    """uvicorn factory for worker processes: the bento named by ``$BENTO_JUPYTER_SERVE_ROOT``, trusted only
    with the manifest digest the supervisor already approved."""
    trust = TrustPolicy(trusted_digests=frozenset({os.environ.get(_DIGEST_VARIABLE, "")}))
    definition, _ = load_bento(Path(os.environ[_ROOT_VARIABLE]), trust)
    return ServiceApp(definition)


def serve_bento(root: Path, host: str, port: int, workers: int = 1, trust: TrustPolicy | None = None) -> None:
    """Load (and verify) the bento, bind, and serve until interrupted; ``trust`` decides about pickles."""
    definition, manifest = load_bento(root, trust or TrustPolicy())  # fail here, before binding
    sock = bind_socket(host, port)
    shown = f"[{host}]" if ":" in host else host
    print(
        f"serving {manifest['name']} ({manifest['digest'][:19]}) at http://{shown}:{sock.getsockname()[1]}", flush=True
    )
    options = {"lifespan": "off", "access_log": False, "http": "httptools", "log_level": "warning"}
    if workers > 1:
        os.environ[_ROOT_VARIABLE] = str(root.resolve())
        os.environ[_DIGEST_VARIABLE] = manifest["digest"]
        config = uvicorn.Config(f"{__name__}:app_from_environment", factory=True, workers=workers, **options)
        # The supervisor hands our bound TCP socket to every worker (TCP_NODELAY stays on).
        Multiprocess(config, sockets=[sock]).run()
    else:
        uvicorn.Server(uvicorn.Config(ServiceApp(definition), **options)).run(sockets=[sock])
