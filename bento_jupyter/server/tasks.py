"""``@api(task=True)``: BentoML's task routes, a bounded queue, and worker threads that run tasks from disk.

``POST {route}/submit`` stores the request and answers at once with a task id; worker threads claim
pending tasks oldest first, call the handler the service serves *now* (a hot swap takes effect for
queued tasks), and store the answer. ``GET {route}/status``, ``GET {route}/get``, ``PUT {route}/cancel``
and ``POST {route}/retry`` read and change the store, whichever process wrote it.
"""

from __future__ import annotations

import asyncio
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import orjson
from starlette.types import Receive, Scope, Send

from bento_jupyter.server import asgi_io
from bento_jupyter.server.endpoint import Endpoint
from bento_jupyter.server.http_errors import (
    BadRequest,
    HandlerFailed,
    HTTPError,
    MethodNotAllowed,
    NotFound,
    Overloaded,
    handler_failed,
)
from bento_jupyter.server.task_store import TaskRecord, TaskStore
from bento_jupyter.service.task_context import current_task
from bento_jupyter.service.task_status import TaskStatus

RETENTION_VARIABLE = "BENTO_JUPYTER_TASK_RETENTION"
DEFAULT_RETENTION_S = 24 * 3600.0  # BentoML keeps task results for a day too
DEFAULT_QUEUE_SIZE = 100
_POLL_S = 0.5  # how often idle workers look for tasks other processes stored
_MAX_MAINTENANCE_S = 60.0  # idle workers purge expired tasks at least this often
_INTERRUPTED = HandlerFailed("the server stopped while this task ran: retry it").body()
TASK_ROUTES = ("/submit", "/status", "/get", "/cancel", "/retry")


def retention_from_environment() -> float:
    """Seconds a finished task is kept: ``$BENTO_JUPYTER_TASK_RETENTION``, else a day."""
    raw = os.environ.get(RETENTION_VARIABLE)
    if not raw:
        return DEFAULT_RETENTION_S
    try:
        seconds = float(raw)
    except ValueError:
        raise ValueError(f"${RETENTION_VARIABLE} must be a number of seconds, got {raw!r}") from None
    if seconds <= 0:
        raise ValueError(f"${RETENTION_VARIABLE} must be positive, got {raw!r}")
    return seconds


Answer = tuple[int, bytes, str]  # HTTP status, body, media type
Execute = Callable[[TaskRecord], Answer]  # runs a stored task's request to its answer, on a worker thread


@dataclass(frozen=True)
class TaskAPI:
    """What the task routes need of an API: its names, bounds, and a check of a request before it is stored."""

    name: str
    route: str
    max_queue_size: int = DEFAULT_QUEUE_SIZE
    max_concurrency: int = 1
    validate: Callable[[bytes], Any] | None = None  # raises BadRequest

    @classmethod
    def of(cls, endpoint: Endpoint) -> TaskAPI:
        config = endpoint.method.config
        return cls(
            endpoint.method.name,
            endpoint.method.route,
            config.max_queue_size or DEFAULT_QUEUE_SIZE,
            config.max_concurrency or 1,
            endpoint.decode,
        )


def run_in_process(store: TaskStore, resolve: Callable[[str], Endpoint | None]) -> Execute:
    """Tasks run by calling the handler this process serves now (``resolve``: API name -> its endpoint), with the
    endpoint's own decode and body. The call itself stays on the task's worker thread, where ``current_task``
    is set: the queue on disk, not the endpoint's admission, bounds how many run."""

    def execute(record: TaskRecord) -> Answer:
        endpoint = resolve(record.api)
        if endpoint is None:
            raise NotFound(f"the service no longer serves {record.api}()")
        method = endpoint.method
        kwargs = endpoint.decode(record.input)
        token = current_task.set((store, record.task_id))
        try:
            result = asyncio.run(method.func(**kwargs)) if method.is_async else method.func(**kwargs)
        finally:
            current_task.reset(token)
        body, media = endpoint.body(method.encode(result))
        return 200, body, media.decode()

    return execute


class TaskRunner:
    """Runs one service's tasks on worker threads with ``execute``; lives across hot swaps.

    Idle workers look after the store every ``maintenance_s`` seconds (at most a minute): tasks past their
    retention are deleted, and tasks a process that stopped was running (another worker) are failed, so they
    no longer count against ``max_concurrency``."""

    def __init__(self, store: TaskStore, execute: Execute) -> None:
        self.store = store
        self._execute = execute
        self._wake = threading.Condition()
        self._limits: dict[str, int] = {}  # API name -> at most this many at once, across processes
        self._seconds: dict[str, float] = {}  # API name -> smoothed run time, for Retry-After
        self._threads: list[threading.Thread] = []
        self._stopped = False
        retention = store.retention_s or _MAX_MAINTENANCE_S
        self.maintenance_s = min(_MAX_MAINTENANCE_S, max(_POLL_S, retention / 2))
        self._maintained = time.monotonic()
        store.recover(_INTERRUPTED)
        store.purge()

    def serve(self, apis: list[TaskAPI]) -> None:
        """Run tasks of ``apis`` (the task APIs served now), starting workers as needed."""
        with self._wake:
            self._limits = {api.name: api.max_concurrency for api in apis}
            wanted = sum(self._limits.values())
            while len(self._threads) < wanted:
                thread = threading.Thread(target=self._work, name=f"bento-task-{len(self._threads)}", daemon=True)
                self._threads.append(thread)
                thread.start()
            self._wake.notify_all()

    def submit(self, api: TaskAPI, body: bytes) -> TaskRecord:
        """Store a task, or refuse with 503 and a Retry-After when ``max_queue_size`` tasks already wait."""
        waiting = self.store.pending(api.name)
        if waiting >= api.max_queue_size:
            per_task = self._seconds.get(api.name, 1.0)
            raise Overloaded(min(3600.0, math.ceil(waiting * per_task / api.max_concurrency)))
        record = self.store.add(api.name, body)
        with self._wake:
            self._wake.notify()
        return record

    def _claim(self) -> TaskRecord | None:
        with self._wake:
            limits = dict(self._limits)
        return self.store.claim(limits)

    def _maintain(self) -> None:
        """Purge expired tasks and fail orphaned ones, once per ``maintenance_s`` among this runner's workers."""
        with self._wake:
            if time.monotonic() - self._maintained < self.maintenance_s:
                return
            self._maintained = time.monotonic()
        self.store.recover(_INTERRUPTED)
        self.store.purge()

    def _work(self) -> None:
        while not self._stopped:
            record = self._claim()
            if record is None:
                self._maintain()
                with self._wake:
                    self._wake.wait(_POLL_S)
                continue
            try:
                self._run(record)
            finally:
                with self._wake:
                    self._wake.notify_all()

    def _run(self, record: TaskRecord) -> None:
        began = time.monotonic()
        try:
            status, body, media = self._execute(record)
        except HTTPError as error:
            status, body, media = error.status, error.body(), "application/json"
        except BaseException as exc:  # SystemExit from a handler too: the task fails, the worker lives on
            failure = handler_failed(record.api, exc)
            status, body, media = failure.status, failure.body(), "application/json"
        outcome = TaskStatus.COMPLETED if status < 400 else TaskStatus.FAILED
        self.store.finish(record.task_id, outcome, body, media, status)
        seconds = time.monotonic() - began
        previous = self._seconds.get(record.api)
        self._seconds[record.api] = seconds if previous is None else 0.8 * previous + 0.2 * seconds

    def close(self) -> None:
        """Stop claiming tasks; a running task finishes on its daemon thread, a pending one waits on disk."""
        with self._wake:
            self._stopped = True
            self._wake.notify_all()


def task_store_path(home: Path, service: str, scope: str | None = None) -> Path:
    """The SQLite file of one serving instance's task queue. ``scope`` (see ``bento_task_scope``,
    ``kernel_task_scope``) keeps services of the same name off each other's queues: each would run the
    other's tasks with its own code."""
    return home / "tasks" / (f"{service}.sqlite3" if scope is None else f"{service}.{scope}.sqlite3")


def bento_task_scope(digest: str) -> str:
    """The queue of a served bento, by its manifest digest (``sha256:<hex>``): restarts and workers share it."""
    return "bento-" + digest.rpartition(":")[2][:16]


def kernel_task_scope(kernel: str | None) -> str:
    """The queue of a kernel's service, by Jupyter kernel id: hot swaps of its cell keep it."""
    return f"kernel-{kernel or 'local'}"


def _task_id(query_string: bytes) -> str:
    values = parse_qs(query_string.decode()).get("task_id")
    if not values or not values[0]:
        raise BadRequest("task_id is required", field="task_id")
    return values[0]


class TaskRoutes:
    """The five routes BentoML adds for a task API, answering under ``{route}/...``."""

    def __init__(self, api: TaskAPI, runner: TaskRunner, max_body_bytes: int) -> None:
        self.api = api
        self._runner = runner
        self._max_body = max_body_bytes
        self._actions = {
            "/submit": ("POST", self._submit),
            "/status": ("GET", self._status),
            "/get": ("GET", self._get),
            "/cancel": ("PUT", self._cancel),
            "/retry": ("POST", self._retry),
        }

    def paths(self) -> list[str]:
        return [self.api.route + suffix for suffix in TASK_ROUTES]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            status, body, media = await self.respond(scope, receive)
            await asgi_io.send_bytes(send, status, body, media.encode())
        except HTTPError as error:
            await asgi_io.send_error(send, error)

    async def respond(self, scope: Scope, receive: Receive) -> Answer:
        """The answer to a request for one of ``paths()``; HTTPError for a refusal."""
        verb, action = self._actions[scope["path"].removeprefix(scope.get("root_path", ""))[len(self.api.route) :]]
        if scope["method"] != verb:
            raise MethodNotAllowed(f"{scope['path']} accepts {verb} only", headers={"allow": verb})
        return await action(scope, receive)

    def _record(self, scope: Scope) -> TaskRecord:
        task_id = _task_id(scope.get("query_string", b""))
        record = self._runner.store.get(task_id)
        if record is None or record.api != self.api.name:
            raise NotFound(f"no task {task_id} of {self.api.name}()", field="task_id")
        return record

    @staticmethod
    def _status_answer(record: TaskRecord) -> Answer:
        return 200, orjson.dumps(record.status_json()), "application/json"

    async def _submit(self, scope: Scope, receive: Receive) -> Answer:
        asgi_io.check_json_request(scope)
        body = await asgi_io.read_body(scope, receive, self._max_body)
        if self.api.validate is not None:
            self.api.validate(body)  # refuse bad input now, not when the task runs
        return self._status_answer(self._runner.submit(self.api, body))

    async def _status(self, scope: Scope, _: Receive) -> Answer:
        return self._status_answer(self._record(scope))

    async def _get(self, scope: Scope, _: Receive) -> Answer:
        record = self._record(scope)
        if record.status is TaskStatus.CANCELED:
            raise BadRequest(f"task {record.task_id} was canceled")
        if not record.status.finished or record.result is None:
            raise BadRequest(f"task {record.task_id} is not completed yet")
        return record.http_status or 200, record.result, record.media_type or "application/json"

    async def _cancel(self, scope: Scope, _: Receive) -> Answer:
        record = self._record(scope)
        canceled = self._runner.store.cancel(record.task_id)
        if canceled is None:  # it finished, before or since we read it
            finished = self._runner.store.get(record.task_id) or record
            raise BadRequest(f"task {record.task_id} already finished ({finished.status.value})")
        return self._status_answer(canceled)

    async def _retry(self, scope: Scope, _: Receive) -> Answer:
        record = self._record(scope)
        if not record.status.finished:
            raise BadRequest(f"task {record.task_id} is not completed yet")
        return self._status_answer(self._runner.submit(self.api, record.input))
