"""The services of a kernel, reached through their control routes (``bento_jupyter.server.control``),
not through the kernel: they answer while a cell runs."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

from bento_jupyter.errors import BentoNotFoundError
from bento_jupyter.server.control import STATS_PATH, STOP_PATH, ControlRecord, read_records

TIMEOUT_S = 1.5
STOP_WAIT_S = 10.0


def _call(record: ControlRecord, method: str, path: str) -> requests.Response:
    headers = {"Authorization": f"Bearer {record.token}"}
    return requests.request(method, record.control_url + path, headers=headers, timeout=TIMEOUT_S)


def _status(record: ControlRecord) -> dict[str, Any] | None:
    """The service's live status, or None when it no longer answers (it stopped)."""
    try:
        answer = _call(record, "GET", STATS_PATH)
    except requests.RequestException:
        return None
    return answer.json() if answer.status_code == 200 else None


def _records(kernel_id: str) -> list[ControlRecord]:
    return [r for r in read_records() if r.kernel_id == kernel_id]


def kernel_services(kernel_id: str) -> list[dict[str, Any]]:
    """Every running service of kernel ``kernel_id``, as ``server.running.service_status`` describes it."""
    records = _records(kernel_id)
    if not records:
        return []
    with ThreadPoolExecutor(len(records)) as pool:
        found = list(pool.map(_status, records))
    return sorted((s for s in found if s is not None), key=lambda s: s["name"])


def stop_service(kernel_id: str, name: str) -> dict[str, Any]:
    """Stop service ``name`` of kernel ``kernel_id`` and wait (bounded) until it no longer answers."""
    record = next((r for r in _records(kernel_id) if r.name == name), None)
    if record is None:
        raise BentoNotFoundError(f"no service named {name!r} is running in this kernel")
    try:
        _call(record, "POST", STOP_PATH).raise_for_status()
    except requests.RequestException as exc:
        raise BentoNotFoundError(f"service {name!r} did not answer its stop request ({exc})") from None
    deadline = time.monotonic() + STOP_WAIT_S
    while _status(record) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    return {"ok": True, "message": f"stopped {name}"}
