"""Serve a bento in its own process (``bento-jupyter serve``), optionally with several workers."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.supervisors import Multiprocess

from bento_jupyter.bento.loader import load_bento
from bento_jupyter.bento.trust import TrustPolicy
from bento_jupyter.server.app import ServiceApp
from bento_jupyter.server.refusal import RefusingProtocol
from bento_jupyter.server.replay import verification_warning
from bento_jupyter.server.tasks import bento_task_scope
from bento_jupyter.service.settings import ServiceSettings
from bento_jupyter.sockets import bind_socket
from bento_jupyter.uvicorn_config import ConnectionLimits, uvicorn_config

_ROOT_VARIABLE = "BENTO_JUPYTER_SERVE_ROOT"
_DIGEST_VARIABLE = "BENTO_JUPYTER_SERVE_DIGEST"  # the manifest the supervisor loaded, so trusted, if it was
_SETTINGS_VARIABLE = "BENTO_JUPYTER_SERVE_SETTINGS"  # the settings the supervisor serves with, as JSON


def app_from_environment() -> ServiceApp:
    """uvicorn factory for worker processes: the bento named by ``$BENTO_JUPYTER_SERVE_ROOT``, trusted only
    with the manifest digest the supervisor already approved."""
    trust = TrustPolicy(trusted_digests=frozenset({os.environ.get(_DIGEST_VARIABLE, "")}))
    definition, _ = load_bento(Path(os.environ[_ROOT_VARIABLE]), trust)
    settings = ServiceSettings.from_manifest(json.loads(os.environ[_SETTINGS_VARIABLE]))
    return ServiceApp(
        definition,
        settings.max_body_bytes,
        task_scope=bento_task_scope(os.environ[_DIGEST_VARIABLE]),
        request_timeout_s=settings.request_timeout,
    )


def serve_bento(
    root: Path,
    host: str,
    port: int,
    workers: int = 1,
    trust: TrustPolicy | None = None,
    overrides: Mapping[str, Any] | None = None,
    limits: ConnectionLimits | None = None,
    warn_unverified: bool = True,
) -> None:
    """Load (and verify) the bento, bind, and serve until interrupted; ``trust`` decides about pickles,
    ``limits`` bound slow and idle clients.

    The service runs with the settings the bento recorded, each of ``overrides`` (by name) in its place. Once the
    bento has loaded, a build that did not check every API is named on stderr (``warn_unverified``), so a bento
    refused at load shows only its refusal.
    """
    definition, manifest = load_bento(root, trust or TrustPolicy())  # fail here, before binding
    warning = verification_warning(manifest.verification) if warn_unverified else None
    if warning is not None:
        print(f"{root}: WARNING {warning}", file=sys.stderr, flush=True)
    settings = manifest.served_settings.overridden(overrides or {})
    sock = bind_socket(host, port)
    shown = f"[{host}]" if ":" in host else host
    print(f"serving {manifest.name} ({manifest.digest[:19]}) at http://{shown}:{sock.getsockname()[1]}", flush=True)
    if workers > 1:
        os.environ[_ROOT_VARIABLE] = str(root.resolve())
        os.environ[_DIGEST_VARIABLE] = manifest.digest
        os.environ[_SETTINGS_VARIABLE] = json.dumps(settings.to_manifest())
        config = uvicorn_config(
            f"{__name__}:app_from_environment", limits, http=RefusingProtocol, factory=True, workers=workers
        )
        # The supervisor hands our bound TCP socket to every worker (TCP_NODELAY stays on).
        Multiprocess(config, sockets=[sock]).run()
    else:
        app = ServiceApp(
            definition,
            settings.max_body_bytes,
            task_scope=bento_task_scope(manifest.digest),
            request_timeout_s=settings.request_timeout,
        )
        uvicorn.Server(uvicorn_config(app, limits, http=RefusingProtocol)).run(sockets=[sock])
