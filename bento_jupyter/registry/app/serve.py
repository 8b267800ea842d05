"""Run a registry: open its backends, bind a socket, serve the API with uvicorn until stopped."""

from __future__ import annotations

import ipaddress
import signal
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bento_jupyter.paths import home
from bento_jupyter.registry.app.operations import MAX_BLOB_BYTES, MAX_JSON_BYTES
from bento_jupyter.registry.errors import InvalidRequest
from bento_jupyter.sockets import DEFAULT_HOST, bind_socket
from bento_jupyter.uvicorn_config import ConnectionLimits, uvicorn_config

if TYPE_CHECKING:
    from bento_jupyter.registry.app.operations import Context

DEFAULT_PORT = 8787


def registry_home() -> Path:
    return home() / "registry"


def default_db_url() -> str:
    return f"sqlite:///{registry_home() / 'registry.db'}"


def default_storage() -> str:
    return str(registry_home() / "blobs")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class ServeOptions:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    db: str | None = None
    storage: str | None = None
    s3_endpoint: str | None = None
    open: bool = False
    max_json_bytes: int = MAX_JSON_BYTES
    max_blob_bytes: int = MAX_BLOB_BYTES
    log_level: str = "warning"
    upgrade: bool = False  # migrate an older database's schema before serving
    webhook_attempts: int = 8
    webhook_backoff_s: float = 1.0  # first wait between attempts; doubles each time, at most a minute
    require_signature: tuple[str, ...] = ()  # names (fnmatch patterns) publishable only signed by a trusted key
    trusted_keys: str | None = None  # a PEM public key or a directory of them
    limits: ConnectionLimits = field(default_factory=ConnectionLimits)  # head timeout, connection limit


def build_context(options: ServeOptions) -> Context:
    """Open the database and blob store that ``options`` name (SQLAlchemy, boto3 load only here)."""
    from bento_jupyter.registry.app.operations import Context, Limits
    from bento_jupyter.registry.auth import TokenStore
    from bento_jupyter.registry.db.metadata import MetadataStore
    from bento_jupyter.registry.db.migrations import open_database
    from bento_jupyter.registry.signatures import SignaturePolicy
    from bento_jupyter.registry.storage import open_blob_store
    from bento_jupyter.registry.store import RegistryStore

    if options.open and not is_loopback(options.host):
        raise InvalidRequest(f"--open serves without tokens, so only on a loopback host, not {options.host!r}")
    policy = SignaturePolicy.configure(list(options.require_signature), options.trusted_keys)
    engine = open_database(options.db or default_db_url(), migrate=options.upgrade)
    blobs = open_blob_store(options.storage or default_storage(), options.s3_endpoint)
    limits = Limits(options.max_json_bytes, options.max_blob_bytes)
    return Context(RegistryStore(MetadataStore(engine), blobs), TokenStore(engine), limits, options.open, policy)


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def serve(options: ServeOptions) -> None:
    """Serve in the foreground; prints ``registry listening on URL`` once the socket is bound."""
    import uvicorn

    from bento_jupyter.registry.app.routes import create_app
    from bento_jupyter.registry.webhook_dispatcher import RetryPolicy, WebhookDispatcher

    ctx = build_context(options)
    sock = bind_socket(options.host, options.port)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"registry listening on http://{shown}:{port}", flush=True)
    print(f"  metadata {ctx.store.metadata.engine.url.render_as_string(hide_password=True)}", flush=True)
    print(f"  blobs    {ctx.store.blobs!r}", flush=True)
    if ctx.open:
        print("  auth     OPEN: anyone on this machine may read and write", flush=True)
    elif not ctx.tokens.list():
        print(
            "  auth     no tokens yet: bento-jupyter registry token create --scope admin", file=sys.stderr, flush=True
        )
    config = uvicorn_config(create_app(ctx), options.limits, log_level=options.log_level)
    retry = RetryPolicy(attempts=options.webhook_attempts, backoff_s=options.webhook_backoff_s)
    dispatcher = WebhookDispatcher(ctx.store.metadata.engine, retry).start()
    if threading.current_thread() is threading.main_thread():
        # uvicorn shuts down gracefully on SIGTERM, then raises it again: exit through the finally below
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        dispatcher.close()
        ctx.store.close()
        sock.close()
