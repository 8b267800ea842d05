"""The ASGI application of one service: its API endpoints plus probes, schema, docs and metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Sized
from pathlib import Path

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send
from swagger_ui_bundle import swagger_ui_path

from bento_jupyter._version import __version__
from bento_jupyter.paths import home
from bento_jupyter.server.body_limit import BodyLimit
from bento_jupyter.server.endpoint import Endpoint
from bento_jupyter.server.http_errors import Overloaded
from bento_jupyter.server.metrics import ServiceMetrics
from bento_jupyter.server.open_inference import OpenInference
from bento_jupyter.server.streaming import StreamEndpoint
from bento_jupyter.server.task_store import TaskStore
from bento_jupyter.server.tasks import (
    EndpointTasks,
    TaskAPI,
    TaskRoutes,
    TaskRunner,
    retention_from_environment,
    task_store_path,
)
from bento_jupyter.service.definition import ServiceDefinition
from bento_jupyter.service.schema import openapi_document, server_url, service_schema

DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024

_SWAGGER_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<link rel="stylesheet" href="static_docs/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="static_docs/swagger-ui-bundle.js"></script>
<script>window.ui = SwaggerUIBundle({{url: "docs.json", dom_id: "#swagger-ui"}});</script>
</body></html>"""


class ServiceApp:
    """Routes API paths straight to their endpoints; everything else goes to a small Starlette app.

    ``swap()`` replaces the endpoints in one assignment: requests already inside an old endpoint
    finish there, new ones reach the new handlers.
    """

    def __init__(
        self,
        definition: ServiceDefinition,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        task_home: Path | None = None,
        run_tasks: bool = True,
        task_scope: str | None = None,
        request_timeout_s: float | None = None,
    ) -> None:
        self.metrics = ServiceMetrics(definition.name)
        self._max_body = max_body_bytes
        self._request_timeout = request_timeout_s  # every request's deadline cap (--request-timeout)
        self.definition = definition
        self._in_flight: Sized | None = None  # the server's requests in progress, once a connection names them
        self._endpoints = self._build(definition)
        self._task_home = task_home  # tasks are stored under it (default: $BENTO_JUPYTER_HOME)
        self._task_scope = task_scope  # which serving instance's queue: see task_store_path
        self.tasks: TaskRunner | None = None
        self._task_calls: EndpointTasks | None = None  # how self.tasks runs a task: through its endpoint
        self._loop: asyncio.AbstractEventLoop | None = None  # the server's, once known: where tasks are called
        self._task_routes: dict[str, TaskRoutes] = {}
        self._run_tasks = run_tasks  # False: no task routes, no workers (a replay must not run a live queue)
        self._serve_tasks(definition)
        self._schema = orjson.dumps(service_schema(definition))
        site = Starlette(
            routes=[
                Route("/", self._docs_page),
                Route("/readyz", self._ok),
                Route("/livez", self._ok),
                Route("/healthz", self._ok),
                Route("/metrics", self._metrics),
                Route("/schema.json", self._schema_json),
                Route("/docs.json", self._docs_json),
                Mount("/static_docs", StaticFiles(directory=swagger_ui_path)),
                *OpenInference(lambda: self.definition, self._api_endpoint, lambda: self._max_body).routes,
            ]
        )
        self._site = BodyLimit(site, max_body_bytes)  # the API and task routes count their own bodies

    def _build(self, definition: ServiceDefinition) -> dict[str, Endpoint | StreamEndpoint]:
        endpoints: dict[str, Endpoint | StreamEndpoint] = {
            route: StreamEndpoint(m, self.metrics, self._max_body, self._request_timeout)
            if m.is_stream
            else Endpoint(m, self.metrics, self._max_body, self._request_timeout)
            for route, m in definition.apis.items()
        }
        self._refusers = {route.encode(): e.refusal_now for route, e in endpoints.items() if isinstance(e, Endpoint)}
        for endpoint in endpoints.values():
            if isinstance(endpoint, Endpoint):
                endpoint.in_flight = self._in_flight
        return endpoints

    def count_requests(self, in_flight: Sized) -> None:
        """Read ``len(in_flight)`` as the number of HTTP requests the server is handling, on every connection
        (uvicorn's task set; the connection protocol names it). A request that finds no other and an idle model
        then runs at once, instead of waiting one loop turn for requests arriving with it to share its batch."""
        if self._in_flight is not in_flight:
            self._in_flight = in_flight
            for endpoint in self._endpoints.values():
                if isinstance(endpoint, Endpoint):
                    endpoint.in_flight = in_flight

    def refusal(self, raw_path: bytes) -> Overloaded | None:
        """The 503 that the API at ``raw_path`` would give a request arriving now (None: it would admit it, or no
        such API); asked by the connection before it parses the request (``server.refusal``)."""
        refuser = self._refusers.get(raw_path)
        return refuser() if refuser is not None else None

    def _serve_tasks(self, definition: ServiceDefinition) -> None:
        """Task routes for the task APIs of ``definition``; the store and workers outlive hot swaps."""
        apis = [TaskAPI.of(e) for e in self._task_endpoints().values()] if self._run_tasks else []
        if apis and self.tasks is None:
            path = task_store_path(self._task_home or home(), definition.name, self._task_scope)
            store = TaskStore(path, retention_from_environment())
            calls = EndpointTasks(store, lambda name: self._task_endpoints().get(name))
            if self._loop is not None:
                calls.serve_on(self._loop)
            self._task_calls = calls
            self.tasks = TaskRunner(store, calls, calls.ready)
        if self.tasks is not None:
            self.tasks.serve(apis)
        routes = [TaskRoutes(api, self.tasks, self._max_body) for api in apis if self.tasks is not None]
        self._task_routes = {path: r for r in routes for path in r.paths()}

    def _task_endpoints(self) -> dict[str, Endpoint]:
        """The endpoints of the task APIs serving now (after a hot swap, the new ones), by API name."""
        return {e.method.name: e for e in self._endpoints.values() if isinstance(e, Endpoint) and e.method.config.task}

    def close(self) -> None:
        """Stop running tasks from this app (when its server stops; they stay on disk) and release the handlers'
        worker threads and loops."""
        if self.tasks is not None:
            self.tasks.close()
        for endpoint in self._endpoints.values():
            endpoint.close()

    @property
    def endpoints(self) -> dict[str, Endpoint | StreamEndpoint]:
        """The API endpoints serving now, by route."""
        return self._endpoints

    def swap(
        self,
        definition: ServiceDefinition,
        max_body_bytes: int | None = None,
        request_timeout_s: float | None = None,
    ) -> list[Endpoint | StreamEndpoint]:
        """Serve ``definition`` (with a new body limit and request timeout cap) from now on; returns the old
        endpoints, to be retired."""
        if max_body_bytes is not None:
            self._max_body = self._site.max_bytes = max_body_bytes
        self._request_timeout = request_timeout_s
        new = self._build(definition)
        old = self._endpoints
        for route, endpoint in new.items():  # an unchanged signature keeps its docs example
            before = old.get(route)
            if before is not None and before.method.params == endpoint.method.params:
                endpoint.example = before.example
        self.definition = definition
        self._schema = orjson.dumps(service_schema(definition))
        self._endpoints = new
        self._serve_tasks(definition)
        return list(old.values())

    async def retire(self, endpoints: list[Endpoint | StreamEndpoint]) -> None:
        await asyncio.gather(*(endpoint.retire() for endpoint in endpoints))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            endpoint = self._endpoints.get(scope["path"])
            if endpoint is not None:
                await endpoint(scope, receive, send)
                return
        self._served_here()
        if scope["type"] == "http":
            task_route = self._task_routes.get(scope["path"])
            if task_route is not None:
                await task_route(scope, receive, send)
                return
        await self._site(scope, receive, send)

    def _served_here(self) -> None:
        """Note the loop this app is served on (at the lifespan's startup, or at any request but an API's), where
        tasks call their endpoints."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        if self._task_calls is not None and not self._task_calls.ready():
            self._task_calls.serve_on(self._loop)

    def _api_endpoint(self, route: str) -> Endpoint:
        """The endpoint serving the API at ``route`` now (the v2 routes call it, read its samples and answers)."""
        endpoint = self._endpoints[route]
        assert isinstance(endpoint, Endpoint)  # v2 lists no streaming API
        return endpoint

    async def _ok(self, _: Request) -> Response:
        return PlainTextResponse("\n")

    async def _metrics(self, _: Request) -> Response:
        return Response(self.metrics.exposition(), media_type="text/plain; version=0.0.4")

    async def _schema_json(self, _: Request) -> Response:
        return Response(self._schema, media_type="application/json")

    async def _docs_json(self, request: Request) -> Response:
        examples = {route: e.example for route, e in self._endpoints.items() if e.example is not None}
        base = server_url(request.headers.get("x-forwarded-prefix"))
        return Response(
            orjson.dumps(openapi_document(self.definition, __version__, examples, base)),
            media_type="application/json",
        )

    async def _docs_page(self, _: Request) -> Response:
        return HTMLResponse(_SWAGGER_PAGE.format(title=self.definition.name))
