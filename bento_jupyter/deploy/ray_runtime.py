"""What generated Ray Serve applications run: one deployment per bento API, and an HTTP ingress.

Imported only by the module ``bento-jupyter deploy --target ray`` writes, inside an environment with
``ray[serve]`` installed (Ray is not one of our dependencies).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from bento_jupyter.bento.loader import load_bento
from bento_jupyter.bento.trust import TrustPolicy
from bento_jupyter.paths import home
from bento_jupyter.server.app import DEFAULT_MAX_BODY_BYTES
from bento_jupyter.server.endpoint import Endpoint
from bento_jupyter.server.http_errors import (
    ClientClosedRequest,
    HTTPError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RequestTimeout,
    error_response,
)
from bento_jupyter.server.metrics import ServiceMetrics
from bento_jupyter.server.stream_framing import StreamFormat
from bento_jupyter.server.streaming import StreamEndpoint
from bento_jupyter.server.task_store import TaskRecord, TaskStore
from bento_jupyter.server.tasks import TaskAPI, TaskRoutes, TaskRunner, retention_from_environment, task_store_path

Answer = tuple[int, bytes, str]  # status, body, media type
_PROBES = frozenset({"/readyz", "/livez", "/healthz"})
_CANCEL_POLL_S = 0.2
_UNBOUNDED = 1 << 30


def _answer(error: HTTPError) -> Answer:
    """An error as the server answers it (its status and the one JSON error body, ``HTTPError.body``)."""
    return error.status, error.body(), "application/json"


class BentoAPI:
    """One API of a bento, loaded (and verified) in this replica; answers raw JSON request bodies."""

    def __init__(self, bento: str, api: str, trusted_digest: str = "") -> None:
        """``trusted_digest``: the manifest digest ``deploy --trust-code`` approved (pickles load only then)."""
        definition, manifest = load_bento(Path(bento), TrustPolicy(trusted_digests=frozenset({trusted_digest})))
        self.method = next(m for m in definition.apis.values() if m.name == api)
        self._max_body = manifest.served_settings.max_body_bytes
        # the server's own request pipeline: a plain API runs on its HandlerPool (unbounded here: Ray Serve's
        # max_ongoing_requests bounds it), a batchable one on its BatchDispatcher (which merges the requests
        # Ray Serve hands over together)
        metrics = ServiceMetrics(definition.name)
        self.endpoint = Endpoint(self.method, metrics, self._max_body, handler_slots=_UNBOUNDED)
        self.stream_endpoint = StreamEndpoint(self.method, metrics, self._max_body)  # a generator API's

    def _within_limit(self, payload: bytes) -> bytes:
        """``payload``, when within the bento's recorded ``max_body_mb`` (PayloadTooLarge over it)."""
        if len(payload) > self._max_body:
            raise PayloadTooLarge(f"request body of {len(payload)} bytes exceeds the {self._max_body}-byte limit")
        return payload

    async def answer(self, payload: bytes) -> Answer:
        """One request through the server's pipeline (``Endpoint.decode``, ``call``, ``body``)."""
        try:
            kwargs = self.endpoint.decode(self._within_limit(payload))
            body, media = self.endpoint.body(await self.endpoint.call(kwargs))
        except HTTPError as error:
            return _answer(error)
        return 200, body, media.decode()

    async def stream(self, payload: bytes, fmt: str) -> AsyncIterator[Answer | bytes]:
        """A generator API for Ray Serve to stream, through the server's stream pipeline (``StreamEndpoint.decode``,
        ``open``): first the head (an error Answer ends the stream there), then each item framed as ``fmt`` (a
        StreamFormat value), then an error frame if the stream fails (for JSON, which has none, an error Answer).
        When the client leaves, Ray Serve cancels this generator and the handler's generator is closed."""
        stream_format = StreamFormat(fmt)
        try:
            stream = self.stream_endpoint.open(self.stream_endpoint.decode(self._within_limit(payload)), stream_format)
        except HTTPError as error:
            yield _answer(error)
            return
        try:
            try:
                first = await stream.first()
            except HTTPError as failure:
                yield _answer(failure)
                return
            yield 200, b"", f"{stream_format.media_type}; charset=utf-8"
            if first is not None:
                yield first
                async for frame in stream.rest():
                    yield frame
            if stream.failure is not None and stream_format is StreamFormat.JSON:
                yield _answer(stream.failure)
        finally:
            await stream.source.close()

    async def answer_batch(self, payloads: list[bytes]) -> list[Answer]:
        """Requests Ray Serve gathered, submitted together: the API's BatchDispatcher merges them along
        ``batch_dim`` (one model call per shape, up to ``max_batch_size`` items each)."""
        return list(await asyncio.gather(*(self.answer(payload) for payload in payloads)))


class BentoIngress:
    """The application's HTTP entry: ``POST /{api}`` goes to that API's deployment; probes answer here."""

    def __init__(
        self,
        routes: dict[str, Any],
        streams: Collection[str] = (),
        tasks: Collection[dict[str, Any]] = (),
        service: str = "",
        timeouts: dict[str, float] | None = None,
    ) -> None:
        """``timeouts``: route -> the API's deadline in seconds (its ``@api(timeout=)``, capped by the bento's
        ``request_timeout``); past it the call is cancelled and answered 408, as Ray Serve's proxy does."""
        self.routes = routes  # route -> DeploymentHandle of the API's deployment
        self.timeouts = timeouts or {}
        self.streams = frozenset(streams)  # the routes of generator APIs
        self._task_routes: dict[str, TaskRoutes] = {}
        if tasks:
            # Ray Serve has no task queue: this replica keeps tasks in SQLite and runs each on the API's deployment.
            apis = [TaskAPI(t["name"], t["route"], t["max_queue_size"], t["max_concurrency"]) for t in tasks]
            self._task_handles = {api.name: routes[api.route] for api in apis}
            self._store = TaskStore(task_store_path(home(), service), retention_from_environment())
            runner = TaskRunner(self._store, self._run_task)
            runner.serve(apis)
            for api in apis:
                task_routes = TaskRoutes(api, runner, DEFAULT_MAX_BODY_BYTES)
                self._task_routes.update(dict.fromkeys(task_routes.paths(), task_routes))

    def _run_task(self, record: TaskRecord) -> Answer:
        """On a task worker thread: the API's deployment answers the stored request; a cancel asked for
        meanwhile cancels the Ray Serve request (the task then ends ``canceled``)."""
        response = self._task_handles[record.api].remote(record.input)
        while True:
            try:
                status, body, media = response.result(timeout_s=_CANCEL_POLL_S)
                return status, body, media
            except TimeoutError:
                if self._store.cancel_requested(record.task_id):
                    response.cancel()
                    return _answer(ClientClosedRequest("canceled while running"))

    async def __call__(self, request: Request) -> Response:
        path, root = request.url.path, request.scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :] or "/"
        if path in _PROBES:
            return Response("\n", media_type="text/plain")
        task_routes = self._task_routes.get(path)
        if task_routes is not None:
            try:
                status, body, media = await task_routes.respond({**request.scope, "path": path}, request.receive)
            except HTTPError as error:
                return error_response(error)
            return Response(body, status_code=status, media_type=media)
        handle = self.routes.get(path)
        if handle is None:
            status, body, media = _answer(NotFound(f"no API at {path}; APIs: {', '.join(sorted(self.routes))}"))
        elif request.method != "POST":
            status, body, media = _answer(MethodNotAllowed(f"{path} accepts POST only"))
        elif path in self.streams:
            return await self._stream(handle, request)
        else:
            status, body, media = await self._call(handle, path, request)
        return Response(body, status_code=status, media_type=media)

    async def _call(self, handle: Any, path: str, request: Request) -> Answer:
        """The API's deployment answers the body, within the API's deadline (from arrival here) when it has one."""
        timeout = self.timeouts.get(path)
        if timeout is None:
            return await handle.remote(await request.body())
        response = None
        try:
            async with asyncio.timeout(timeout):
                response = handle.remote(await request.body())
                return await response
        except TimeoutError:
            if response is not None:
                response.cancel()
            return _answer(RequestTimeout(f"{path} was not answered within its {timeout} s timeout"))

    async def _stream(self, handle: Any, request: Request) -> Response:
        try:
            fmt = StreamFormat.negotiate(request.scope)
        except HTTPError as error:
            return error_response(error)
        chunks = handle.options(method_name="stream", stream=True).remote(await request.body(), fmt.value)
        status, body, media = await chunks.__anext__()
        if status != 200:
            return Response(body, status_code=status, media_type=media)
        if fmt is StreamFormat.JSON:  # one answer: every item, or the failure
            frames = [chunk async for chunk in chunks]
            if frames and isinstance(frames[-1], tuple):
                status, body, media = frames[-1]
                return Response(body, status_code=status, media_type=media)
            return Response(b"[" + b",".join(frames) + b"]", media_type="application/json")
        headers = {"cache-control": "no-cache", "x-accel-buffering": "no"}
        return StreamingResponse(chunks, media_type=media, headers=headers)
