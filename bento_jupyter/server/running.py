"""The services running in this process, keyed by name and by the notebook cell that defined them."""

from __future__ import annotations

import atexit
import builtins
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bento_jupyter.errors import PortInUse, ServerStartError, ServiceConflictError
from bento_jupyter.server.app import ServiceApp
from bento_jupyter.server.control import ControlApp, ControlRecord, new_token, remove_record, write_record
from bento_jupyter.server.metrics import APIStats
from bento_jupyter.server.runner import ThreadedServer
from bento_jupyter.server.status import api_stats_json, combined_stats_json
from bento_jupyter.server.tasks import kernel_task_scope
from bento_jupyter.service.definition import ServiceDefinition
from bento_jupyter.service.settings import ServiceSettings
from bento_jupyter.sockets import DEFAULT_HOST

DEFAULT_SETTINGS = ServiceSettings()


@dataclass
class RunningService:
    """A service answering HTTP from a background thread of this process."""

    definition: ServiceDefinition
    cell_id: str | None
    app: ServiceApp
    server: ThreadedServer
    started_at: float = field(default_factory=time.time)
    swaps: int = 0
    control_file: Path | None = None
    settings: ServiceSettings = DEFAULT_SETTINGS

    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def running(self) -> bool:
        return self.server.running

    def swap(self, definition: ServiceDefinition, cell_id: str | None, settings: ServiceSettings) -> None:
        """Hot-swap the handlers (and settings) on the same port; queued requests finish on the old ones."""
        old = self.app.swap(definition, settings.max_body_bytes, settings.request_timeout)
        self.definition = definition
        self.settings = settings
        self.cell_id = cell_id
        self.swaps += 1
        self.server.submit(self.app.retire(old))

    def stats(self) -> dict[str, APIStats]:
        return self.app.metrics.snapshot()

    def stop(self) -> None:
        self.server.stop()
        if self.control_file is not None:
            remove_record(self.control_file)
        self.app.close()


RECENT_TASKS = 20


def _tasks(service: RunningService) -> list[dict[str, Any]]:
    """The service's newest tasks (their status, API and times), for the sidebar's task list."""
    tasks = service.app.tasks
    if tasks is None:
        return []
    return [{"api": r.api, **r.status_json()} for r in tasks.store.recent(RECENT_TASKS)]


def service_status(service: RunningService) -> dict[str, Any]:
    """JSON for the sidebar and the cell's panel: name, url, host, port, cell_id, running, endpoints (each with
    its stats) and the service's combined stats (requests, errors, in_flight, rate_per_s, p50_ms, p99_ms in
    milliseconds, mean_batch_size; null before any traffic), and its newest tasks (``tasks``: api, task_id, status,
    created_at, executed_at, completed_at, cancel_requested)."""
    stats = service.stats()
    return {
        "name": service.name,
        "url": service.url,
        "host": service.server.host,
        "port": service.server.port,
        "cell_id": service.cell_id,
        "running": service.running,
        "endpoints": [
            {
                "name": m.name,
                "route": route,
                "batchable": m.config.batchable,
                "stream": m.is_stream,
                "task": m.config.task,
                "stats": api_stats_json(stats.get(route)),
            }
            for route, m in service.definition.apis.items()
        ],
        "stats": combined_stats_json(list(stats.values())),
        "tasks": _tasks(service),
    }


class ServiceTable:
    """Starts, swaps, lists and stops this process's services (thread-safe)."""

    def __init__(self) -> None:
        self._by_name: dict[str, RunningService] = {}
        self._lock = threading.Lock()

    def serve(
        self,
        definition: ServiceDefinition,
        *,
        cell_id: str | None = None,
        host: str = DEFAULT_HOST,
        port: int | None = None,
        settings: ServiceSettings = DEFAULT_SETTINGS,
        kernel_id: str | None = None,
    ) -> RunningService:
        """Start ``definition``, or hot-swap it into the service of the same name and cell; ``kernel_id`` is the
        Jupyter kernel serving it (its tasks' scope and its control record; None outside a kernel)."""
        with self._lock:
            current = self._by_name.get(definition.name)
            if current is not None and not current.running:
                del self._by_name[definition.name]
                current = None
            if current is not None:
                if cell_id and current.cell_id and cell_id != current.cell_id:
                    raise ServiceConflictError(
                        f"service {definition.name!r} is served by another cell ({current.cell_id});"
                        f" stop it first with %bento stop {definition.name}"
                    )
                if port is None:  # a move to another host keeps the port
                    port = current.server.port
                if port == current.server.port and host == current.server.host:
                    current.swap(definition, cell_id, settings)
                    return current
            replaced = [s for s in self._by_name.values() if s is current or (cell_id and s.cell_id == cell_id)]
            # Bind and start first: if that fails, whatever served before is still serving.
            try:
                service = self._start(definition, cell_id, host, port, settings, kernel_id)
            except PortInUse:
                # The address may be taken by one of ours (the same port, on this host or one that overlaps it,
                # such as 0.0.0.0): free it, then start; if even that fails, the services stopped come back.
                holding = [s for s in replaced if s.server.port == port]
                if not holding:
                    raise
                for old in holding:
                    self._stop_locked(old.name)
                try:
                    service = self._start(definition, cell_id, host, port, settings, kernel_id)
                except ServerStartError:
                    for old in holding:
                        self._restart_locked(old, kernel_id)
                    raise
            for old in replaced:
                if self._by_name.get(old.name) is old:
                    self._stop_locked(old.name)
            self._by_name[definition.name] = service
            return service

    def _restart_locked(self, service: RunningService, kernel_id: str | None) -> None:
        """Serve ``service``'s definition again where it served (after a move that failed once it was stopped)."""
        host, port = service.server.host, service.server.port
        self._by_name[service.name] = self._start(
            service.definition, service.cell_id, host, port, service.settings, kernel_id
        )

    def _start(
        self,
        definition: ServiceDefinition,
        cell_id: str | None,
        host: str,
        port: int | None,
        settings: ServiceSettings,
        kernel_id: str | None,
    ) -> RunningService:
        token = new_token()
        # `service` is bound below, before the token is written: no request can reach these before.
        control = ControlApp(
            token,
            stats=lambda: service_status(service),
            stop=lambda: threading.Thread(target=self._stop_service, args=(service,), daemon=True).start(),
        )
        app = ServiceApp(
            definition,
            settings.max_body_bytes,
            task_scope=kernel_task_scope(kernel_id),
            request_timeout_s=settings.request_timeout,
        )
        try:
            server = ThreadedServer(app, host, port, control)
            server.start()
        except BaseException:
            app.close()
            raise
        service = RunningService(definition, cell_id, app, server, settings=settings)
        assert server.control_url is not None
        record = ControlRecord(definition.name, kernel_id, os.getpid(), server.control_url, token)
        service.control_file = write_record(record)
        return service

    def get(self, name: str) -> RunningService | None:
        return self._by_name.get(name)

    def list(self) -> list[RunningService]:
        return [s for s in self._by_name.values() if s.running]

    def stop(self, name: str) -> bool:
        """Stop ``name``; False when no such service runs."""
        with self._lock:
            return self._stop_locked(name)

    def _stop_locked(self, name: str) -> bool:
        service = self._by_name.pop(name, None)
        if service is None:
            return False
        service.stop()
        return True

    def _stop_service(self, service: RunningService) -> None:
        """Stop ``service`` if it is still the one serving its name (a control route's stop)."""
        with self._lock:
            if self._by_name.get(service.name) is service:
                self._stop_locked(service.name)

    def stop_all(self) -> builtins.list[str]:
        with self._lock:
            names = list(self._by_name)
            for name in names:
                self._stop_locked(name)
            return names


services = ServiceTable()
atexit.register(services.stop_all)
