"""What ``%bento build`` and ``%bento save`` do with a kernel's namespace: one code path for the
magics and the JupyterLab sidebar (through ``kernel.inventory``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bento_jupyter.bento.build import build_bento, save_model
from bento_jupyter.bento.local_store import Store, StoredItem
from bento_jupyter.capture.cells import CellLog
from bento_jupyter.capture.code_slice import CodeSlice
from bento_jupyter.capture.lineage import LineageContext, collect_lineage, kernel_id, notebook_path_from_environment
from bento_jupyter.capture.slicer import capture_handlers, capture_object
from bento_jupyter.errors import BentoNotFoundError
from bento_jupyter.server.replay import build_check
from bento_jupyter.server.running import services
from bento_jupyter.server.samples import collect
from bento_jupyter.service.definition import ServiceDefinition


def user_namespace(shell: Any) -> dict[str, Any]:
    """The notebook's own variables: IPython's (``In``, ``Out``, ``exit``...) and private names left out."""
    hidden = shell.user_ns_hidden
    return {k: v for k, v in shell.user_ns.items() if k not in hidden and not k.startswith("_")}


def capture_namespace(shell: Any) -> dict[str, Any]:
    """What captured code can read: the notebook's globals, private (``_``-prefixed) names included."""
    hidden = shell.user_ns_hidden
    return {k: v for k, v in shell.user_ns.items() if k not in hidden}


def notebook_path(shell: Any) -> str | None:
    """The notebook this kernel runs, as Jupyter told it (None in a plain IPython)."""
    return notebook_path_from_environment() or shell.user_ns.get("__session__")


def _lineage(shell: Any, code: CodeSlice) -> dict[str, Any]:
    return collect_lineage(LineageContext(code.cells, notebook_path(shell), kernel_id()))


def capture_service(shell: Any, cell_log: CellLog, definition: ServiceDefinition) -> tuple[CodeSlice, dict[str, Any]]:
    """The code slice a service's handlers need, and its lineage."""
    handlers = [method.func for method in definition.apis.values()]
    code = capture_handlers(handlers, capture_namespace(shell), cell_log)
    return code, _lineage(shell, code)


def build_service(
    shell: Any, cell_log: CellLog, name: str, extra_requirements: Iterable[str] = (), verify: bool = True
) -> StoredItem:
    """Freeze the running service ``name`` into a new bento version in the local store.

    With ``verify``, the new bento is loaded in a fresh process and must answer the service's sampled
    requests (its APIs' ``examples`` among them) as the kernel answered them, else nothing is stored
    (VerificationError). No handler runs in the kernel for this.
    """
    service = services.get(name)
    if service is None:
        raise BentoNotFoundError(f"no service named {name!r}; run its %%bento serve cell first")
    code, lineage = capture_service(shell, cell_log, service.definition)
    samples = collect(service.app.endpoints)  # the answers it gave: no handler runs again here
    check = build_check if verify else None
    return build_bento(
        Store("bentos"), service.definition, code, lineage, list(extra_requirements), samples, check, service.settings
    )


def save_variable(shell: Any, cell_log: CellLog, variable: str, name: str | None = None) -> StoredItem:
    """Save the notebook variable ``variable`` (and the notebook classes it needs) as a new model version."""
    namespace = user_namespace(shell)
    if variable not in namespace:
        raise BentoNotFoundError(f"no variable named {variable!r} in the notebook")
    code = capture_object(variable, namespace[variable], capture_namespace(shell), cell_log)
    return save_model(Store("models"), name or variable.lower().replace("_", "-"), code, _lineage(shell, code))
