"""The ``@api`` decorator: marks a function as an HTTP endpoint and carries its batching config."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from bento_jupyter.errors import ServiceDefinitionError
from bento_jupyter.service.batch_contract import check_batchable

F = TypeVar("F", bound=Callable[..., Any])

API_ATTRIBUTE = "__bento_api__"


@dataclass(frozen=True)
class APIConfig:
    """How one endpoint is exposed and, when ``batchable``, how its calls are merged."""

    batchable: bool = False
    max_batch_size: int = 64
    max_latency_ms: float = 100.0
    batch_dim: int = 0
    route: str | None = None
    name: str | None = None
    max_concurrency: int | None = None
    max_queue_size: int | None = None
    device: str | None = None
    task: bool = False
    timeout: float | None = None
    examples: tuple[Any, ...] = ()
    verify: bool = True
    tolerance: float = 1e-6

    def __post_init__(self) -> None:
        object.__setattr__(self, "examples", tuple(self.examples))
        if self.tolerance < 0:
            raise ServiceDefinitionError("tolerance must be zero or positive")
        if self.max_batch_size < 1:
            raise ServiceDefinitionError("max_batch_size must be at least 1")
        if self.max_latency_ms <= 0:
            raise ServiceDefinitionError("max_latency_ms must be positive")
        if self.max_concurrency is not None and self.max_concurrency < 1:
            raise ServiceDefinitionError("max_concurrency must be at least 1")
        if self.timeout is not None and not self.timeout > 0:
            raise ServiceDefinitionError("timeout must be a positive number of seconds")
        if self.route is not None and not self.route.startswith("/"):
            raise ServiceDefinitionError(f"route must start with '/': {self.route!r}")


@overload
def api(func: F) -> F: ...
@overload
def api(
    func: None = None,
    *,
    batchable: bool = False,
    max_batch_size: int = 64,
    max_latency_ms: float = 100.0,
    batch_dim: int = 0,
    route: str | None = None,
    name: str | None = None,
    max_concurrency: int | None = None,
    max_queue_size: int | None = None,
    device: str | None = None,
    task: bool = False,
    timeout: float | None = None,
    examples: Sequence[Any] = (),
    verify: bool = True,
    tolerance: float = 1e-6,
) -> Callable[[F], F]: ...


def api(func: Callable[..., Any] | None = None, **options: Any) -> Any:
    """Declare ``func`` an endpoint: ``@api`` or ``@api(batchable=True, max_batch_size=64, ...)``.

    The function itself is returned unchanged, so it stays callable in the notebook.
    ``max_latency_ms`` is the longest a request may wait in the batch queue before it is
    answered; requests that cannot make it are refused with 503 rather than left to time out.
    A generator (or async generator) function streams its items as they are yielded.
    ``task=True`` adds BentoML's task routes (``/submit``, ``/status``, ``/get``, ``/cancel``,
    ``/retry``): the call runs in the background and its result is kept on disk; for a task,
    ``max_queue_size`` bounds how many may wait (default 100) and ``max_concurrency`` how many
    run at once (default 1); a task runs as a request to its route does, sharing its ``max_concurrency``.
    A plain API (neither batchable, streaming nor a task) runs at most ``max_concurrency`` calls at
    once on its own threads (default ``min(32, cores + 4)`` for a sync handler, unbounded for an
    async one); ``max_queue_size`` more may wait for a slot (default 16 per slot), further ones are
    refused with 503. ``timeout`` (seconds) is each request's deadline: a request that cannot be
    answered in time is refused or dropped before it is computed, and one still running then is
    answered 504 (counted in ``/metrics``).
    ``examples`` are request bodies (JSON values, e.g. ``[{"text": "hi"}]``) that every build replays
    against the new bento, besides a sample of the requests the service answered; an answer may differ
    from the kernel's by ``tolerance`` (relative and absolute, per number). ``verify=False`` leaves a
    non-deterministic API out of that check (the bento's manifest says so).
    """
    config = APIConfig(**options)

    def mark(target: F) -> F:
        if config.batchable:
            check_batchable(target, config.batch_dim)
        setattr(target, API_ATTRIBUTE, config)
        return target

    return mark(func) if func is not None else mark


def config_of(func: Callable[..., Any]) -> APIConfig | None:
    """The ``@api`` config attached to ``func``, or None when it is undecorated."""
    return getattr(func, API_ATTRIBUTE, None)
