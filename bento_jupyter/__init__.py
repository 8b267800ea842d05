"""bento_jupyter: the fastest path from a model in a notebook to a served, versioned service."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bento_jupyter._version import __version__
from bento_jupyter.service.api import api
from bento_jupyter.service.task_context import cancel_requested
from bento_jupyter.service.tensor_spec import DType, Shape

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

__all__ = [
    "DType",
    "Shape",
    "__version__",
    "api",
    "cancel_requested",
    "load_ipython_extension",
    "service_url",
    "unload_ipython_extension",
]


def service_url(name: str) -> str:
    """Base URL of the service ``name`` running in this process (KeyError if none)."""
    from bento_jupyter.server.running import services

    service = services.get(name)
    if service is None or not service.running:
        raise KeyError(f"no service named {name!r} is running")
    return service.url


def load_ipython_extension(shell: InteractiveShell) -> None:
    """Register the ``%bento`` magics (``%load_ext bento_jupyter``)."""
    from bento_jupyter.kernel.magics import register

    register(shell)


def unload_ipython_extension(shell: InteractiveShell) -> None:
    """Stop every service this kernel runs and remove the hooks."""
    from bento_jupyter.kernel.magics import unregister

    unregister(shell)
