"""What the JupyterLab sidebar asks of a kernel: its services and model-like variables, and actions on them.

The panel evaluates these functions as ``user_expressions`` of a silent execute request, e.g.
``__import__('bento_jupyter.kernel.inventory').kernel.inventory.report()``; each returns a
``JSONReply`` whose ``application/json`` representation is what the panel reads. Actions answer
``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}`` for mistakes a user can act on. They go
through the same functions as the ``%bento`` magics, and work whether or not the extension is loaded.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

from bento_jupyter.bento.loader import load_bento
from bento_jupyter.bento.local_store import Store, StoredItem
from bento_jupyter.bento.trust import TrustPolicy
from bento_jupyter.capture.cells import CellLog
from bento_jupyter.capture.lineage import kernel_id
from bento_jupyter.capture.models import describe_models
from bento_jupyter.errors import BentoJupyterError, BentoNotFoundError, ServiceConflictError
from bento_jupyter.kernel import actions
from bento_jupyter.server.running import service_status, services
from bento_jupyter.sockets import DEFAULT_HOST


class JSONReply:
    """A dict shown to Jupyter as ``application/json`` (and as JSON text elsewhere)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def _repr_json_(self) -> dict[str, Any]:
        return self.data

    def __repr__(self) -> str:
        return json.dumps(self.data)


def _shell() -> Any:
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:
        raise BentoJupyterError("not running inside an IPython kernel")
    return shell


def _magics(shell: Any) -> Any:
    """The loaded ``BentoMagics`` (for its cell log and settings), or None before ``%load_ext``."""
    return getattr(shell, "_bento_magics", None)


def _action(func: Callable[..., dict[str, Any]]) -> Callable[..., JSONReply]:
    @functools.wraps(func)
    def run(*args: Any, **kwargs: Any) -> JSONReply:
        try:
            return JSONReply({"ok": True, **func(*args, **kwargs)})
        except (BentoJupyterError, ValueError, OSError) as exc:
            return JSONReply({"ok": False, "error": str(exc)})

    return run


# -- the report -----------------------------------------------------------------------------------


def report() -> JSONReply:
    """The services this kernel runs and its variables that look like models."""
    return JSONReply(
        {
            "services": [service_status(s) for s in services.list()],
            "models": describe_models(actions.user_namespace(_shell())),
        }
    )


# -- actions --------------------------------------------------------------------------------------


@_action
def stop_service(name: str) -> dict[str, Any]:
    if not services.stop(name):
        raise BentoNotFoundError(f"no service named {name!r} is running")
    return {"message": f"stopped {name}"}


@_action
def cancel_task(name: str, task_id: str) -> dict[str, Any]:
    """Cancel a task of service ``name``: a pending one at once, a running one is asked to stop."""
    service = services.get(name)
    tasks = service.app.tasks if service is not None else None
    record = tasks.store.get(task_id) if tasks else None
    if tasks is None or record is None:
        raise BentoNotFoundError(f"no task {task_id} in a running service named {name!r}")
    canceled = tasks.store.cancel(task_id)
    if canceled is None:  # it finished, before or since we read it
        finished = tasks.store.get(task_id) or record
        return {"message": f"task {task_id} already finished ({finished.status.value})"}
    done = canceled.status.finished
    return {"message": f"canceled task {task_id}" if done else f"asked task {task_id} to stop"}


def _cell_log(shell: Any) -> CellLog:
    magics = _magics(shell)
    return magics.cell_log if magics is not None else CellLog()  # no log before %load_ext: live sources


@_action
def build_service(name: str) -> dict[str, Any]:
    """``%bento build NAME``."""
    shell = _shell()
    item = actions.build_service(shell, _cell_log(shell), name)
    return {"tag": item.tag, "message": f"built bento {item.tag}"}


@_action
def save_model(variable: str, name: str | None = None) -> dict[str, Any]:
    """``%bento save VARIABLE [--name NAME]``."""
    shell = _shell()
    item = actions.save_variable(shell, _cell_log(shell), variable, name)
    return {"tag": item.tag, "message": f"saved model {item.tag}"}


def _fetch(ref: str, registry_url: str | None, token: str | None, trust: TrustPolicy) -> StoredItem:
    if registry_url:
        from bento_jupyter.registry.client.remote import pull

        return pull(ref, registry_url, token or None, trust=trust).item
    if "@" in ref:
        raise BentoNotFoundError(f"{ref}: aliases live in a registry; set registryUrl in Settings > Bento")
    return Store("bentos").resolve(ref)


@_action
def serve_version(
    ref: str, registry_url: str | None = None, token: str | None = None, trust_code: bool = False
) -> dict[str, Any]:
    """Serve bento ``NAME:N`` or ``NAME@ALIAS`` in this kernel: pulled from the registry at ``registry_url``
    (into the local store), else from the local store. A bento that executes code on load needs
    ``trust_code=True`` unless this kernel built it."""
    trust = TrustPolicy(trust_code=trust_code)
    item = _fetch(ref, registry_url, token, trust)
    definition, manifest = load_bento(item.path, trust)
    running = services.get(definition.name)
    if running is not None and running.running:
        raise ServiceConflictError(f"a service named {definition.name!r} already runs here: stop it first")
    magics = _magics(_shell())
    service = services.serve(
        definition,
        host=magics.default_host if magics is not None else DEFAULT_HOST,
        settings=manifest.served_settings,
        kernel_id=kernel_id(),
    )
    return {
        "message": f"serving {item.tag} as {service.name} at {service.url}",
        "url": service.url,
        "name": service.name,
        "port": service.server.port,
        "tag": item.tag,
    }
