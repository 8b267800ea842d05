"""``@api(task=True)``: BentoML's task routes, a bounded queue, and worker threads that run tasks from disk.

``POST {route}/submit`` checks the request with the API's own decode, stores it and answers at once with a task
id; worker threads claim pending tasks oldest first, have the endpoint the service serves *now* (a hot swap takes
effect for queued tasks) answer it through the same pipeline as its HTTP route (``Endpoint.call``), and store the
answer. ``GET {route}/status``, ``GET {route}/get``, ``PUT {route}/cancel``
and ``POST {route}/retry`` read and change the store, whichever process wrote it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
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
    ClientClosedRequest,
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
_STOPPED = "the server stopped while this task ran: retry it"
_INTERRUPTED = HandlerFailed(_STOPPED).body()
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
        """A batchable API's tasks run ``max_batch_size`` per batch the API may run at once, so queued tasks share
        batches as concurrent requests do (its batch queue merges them and bounds the handler's calls)."""
        config = endpoint.method.config
        running = config.max_concurrency or 1
        return cls(
            endpoint.method.name,
            endpoint.method.route,
            config.max_queue_size or DEFAULT_QUEUE_SIZE,
            running * config.max_batch_size if config.batchable else running,
            endpoint.decode,
        )


class EndpointTasks:
    """Runs stored tasks through the endpoint this process serves now (``resolve``: API name -> its endpoint; after
    a hot swap, the new one) along its HTTP route's one pipeline, on the server's event loop: ``decode`` of the
    stored body, ``Endpoint.call`` (the API's own threads or loop and their ``max_concurrency``, or its batch
    queue), ``body``. ``current_task`` is set for the call (``cancel_requested()`` in a plain API's handler).

    Nothing runs before ``serve_on`` names the server's loop (ServiceApp: at its lifespan startup, or its first
    request): until then ``ready()`` is false and tasks wait on disk."""

    def __init__(self, store: TaskStore, resolve: Callable[[str], Endpoint | None]) -> None:
        self._store = store
        self._resolve = resolve
        self._loop: asyncio.AbstractEventLoop | None = None

    def serve_on(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def ready(self) -> bool:
        """Whether a task claimed now can run: the server's loop is known and not closed."""
        return self._loop is not None and not self._loop.is_closed()

    def __call__(self, record: TaskRecord) -> Answer:
        """The task's answer (on its worker thread, which waits); the API's waiting room full of HTTP requests
        (503) makes it wait its turn, as a client would, unless it is canceled meanwhile."""
        while True:
            try:
                return self._on_loop(record)
            except Overloaded:
                if self._store.cancel_requested(record.task_id):
                    raise ClientClosedRequest("canceled while waiting for a free slot") from None
                time.sleep(_POLL_S)

    def _on_loop(self, record: TaskRecord) -> Answer:
        loop = self._loop
        if loop is None or loop.is_closed():
            raise _interrupted()
        try:
            answer = asyncio.run_coroutine_threadsafe(self._answer(record), loop)
        except RuntimeError:  # the loop closed since
            raise _interrupted() from None
        while True:
            try:
                return answer.result(timeout=_POLL_S)
            except concurrent.futures.TimeoutError:
                if loop.is_closed():  # the server stopped: the call will never answer
                    raise _interrupted() from None
            except concurrent.futures.CancelledError:  # cancelled as the server's loop ended
                raise _interrupted() from None

    async def _answer(self, record: TaskRecord) -> Answer:
        current_task.set((self._store, record.task_id))  # in this call's own context, which its handler gets
        endpoint = self._resolve(record.api)
        if endpoint is None:
            raise NotFound(f"the service no longer serves {record.api}()")
        body, media = endpoint.body(await endpoint.call(endpoint.decode(record.input)))
        endpoint.samples.record(record.input, body, media)  # a task's answer is its route's: a build replays it
        return 200, body, media.decode()


class ServerStopped(HandlerFailed):
    """The server's loop ended while a task ran: its call will never answer, its handler may run on."""


def _interrupted() -> ServerStopped:
    return ServerStopped(_STOPPED)


class TaskRunner:
    """Runs one service's tasks on worker threads with ``execute``, while ``ready()``; lives across hot swaps.

    Idle workers look after the store every ``maintenance_s`` seconds (at most a minute): tasks past their
    retention are deleted, and tasks a process that stopped was running (another worker) are failed, so they
    no longer count against ``max_concurrency``."""

    def __init__(self, store: TaskStore, execute: Execute, ready: Callable[[], bool] | None = None) -> None:
        self.store = store
        self._execute = execute
        self._ready = ready  # None: always; else tasks are claimed only while it is true
        self._wake = threading.Condition()
        self._limits: dict[str, int] = {}  # API name -> at most this many at once, across processes
        self._seconds: dict[str, float] = {}  # API name -> smoothed run time, for Retry-After
        self._threads: list[threading.Thread] = []
        self._running: set[str] = set()  # ids of the tasks this runner's workers run now
        self._stopped = False
        self._polling = False  # whether an idle worker polls the store; the other idle ones sleep until woken
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
        if self._ready is not None and not self._ready():
            return None
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
        """Claim and run tasks until closed. Of the idle workers one polls the store (for tasks other processes
        stored) and the others sleep until woken: a stored, finished or claimed task wakes one more, which claims
        the next if there is one, so a batchable API's many workers cost one query per poll while idle."""
        while not self._stopped:
            record = self._claim()
            if record is None:
                with self._wake:
                    polls = not self._polling
                    self._polling = True
                if polls:
                    self._maintain()
                with self._wake:
                    self._wake.wait(_POLL_S if polls else None)
                    if polls:
                        self._polling = False
                continue
            with self._wake:
                self._wake.notify()  # the next waiting task, if any, goes to another worker
            try:
                self._run(record)
            finally:
                with self._wake:
                    self._wake.notify()  # a slot is free: a task waiting on the API's limit may run now

    def _run(self, record: TaskRecord) -> None:
        began = time.monotonic()
        with self._wake:
            self._running.add(record.task_id)
        try:
            status, body, media = self._execute(record)
        except ServerStopped:  # as close() does for each task it cuts: fail it, ask its handler to stop
            self.store.interrupt([record.task_id], _INTERRUPTED)
            return
        except HTTPError as error:
            status, body, media = error.status, error.body(), "application/json"
        except BaseException as exc:  # SystemExit from a handler too: the task fails, the worker lives on
            failure = handler_failed(record.api, exc)
            status, body, media = failure.status, failure.body(), "application/json"
        finally:
            with self._wake:
                self._running.discard(record.task_id)
        outcome = TaskStatus.COMPLETED if status < 400 else TaskStatus.FAILED
        self.store.finish(record.task_id, outcome, body, media, status)
        seconds = time.monotonic() - began
        previous = self._seconds.get(record.api)
        self._seconds[record.api] = seconds if previous is None else 0.8 * previous + 0.2 * seconds

    def close(self) -> None:
        """Stop claiming tasks; a pending one waits on disk, a running one ends ``failed`` (retry it) with its
        cancellation flagged: a handler polling ``cancel_requested()`` returns, one that never polls runs to its end
        on its thread (Python cannot stop a thread) and its answer is dropped."""
        with self._wake:
            self._stopped = True
            running = sorted(self._running)
            self._wake.notify_all()
        self.store.interrupt(running, _INTERRUPTED)


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
