"""Per-request deadlines: the client's header, the API's ``timeout`` and the server's cap as one instant.

The header is Envoy's ``x-envoy-expected-rq-timeout-ms``: the milliseconds the caller will wait for
the answer, as an integer. Envoy sets it on every request it routes upstream, so a service behind
Envoy (Istio, Contour, Emissary) learns the route's timeout for free, and any other client may send it.
A request that cannot be answered within its deadline is refused when it arrives, or dropped from the
queue once the deadline can no longer be met: it is never computed late.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import TypeVar

from starlette.types import Scope

from bento_jupyter.server.asgi_io import header
from bento_jupyter.server.http_errors import BadRequest, DeadlineExceeded

T = TypeVar("T")

DEADLINE_HEADER = "x-envoy-expected-rq-timeout-ms"
_HEADER = DEADLINE_HEADER.encode()


def request_deadline(scope: Scope, arrived: float, cap_s: float | None) -> float | None:
    """The instant (on ``arrived``'s clock, seconds) by which the request must be answered, or None for no deadline.

    ``cap_s`` is the tightest of the API's ``timeout`` and the server's ``--request-timeout``; the header
    may only shorten it. A header that is not a non-negative integer is a 400 naming the header.
    """
    raw = header(scope, _HEADER)
    if not raw:
        return None if cap_s is None else arrived + cap_s
    if not raw.isdigit():
        raise BadRequest(
            f"{DEADLINE_HEADER} must be a whole number of milliseconds, not {raw.decode(errors='replace')!r}",
            field=DEADLINE_HEADER,
        )
    seconds = int(raw) / 1000
    if cap_s is not None:
        seconds = min(seconds, cap_s)
    return arrived + seconds


def tightest(*limits_s: float | None) -> float | None:
    """The smallest of the given limits in seconds, ignoring None (None when all are)."""
    given = [limit for limit in limits_s if limit is not None]
    return min(given) if given else None


async def within(awaitable: Awaitable[T], deadline: float | None, late: str) -> T:
    """``await awaitable``, given up at ``deadline`` (``time.monotonic`` seconds) with DeadlineExceeded(``late``)."""
    if deadline is None:
        return await awaitable
    try:
        async with asyncio.timeout(deadline - time.monotonic()):
            return await awaitable
    except TimeoutError:
        raise DeadlineExceeded(late) from None
