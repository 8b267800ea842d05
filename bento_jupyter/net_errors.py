"""One readable line for a failed HTTP connection, shared by every client we have (registry, OCI)."""

from __future__ import annotations

import re

import requests


def connection_reason(exc: requests.RequestException) -> str:
    """The telling end of requests' nested error text: 'Connection refused', 'Name or service not known'..."""
    found = re.search(r"\[Errno -?\d+\] ([^'\")]+)", str(exc))
    return found.group(1).strip() if found else str(exc)
