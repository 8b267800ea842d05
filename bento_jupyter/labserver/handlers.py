"""The sidebar's REST routes under ``{base_url}bento-jupyter/api/``: authenticated JSON handlers that
run blocking store and registry calls off the IO loop, and answer errors as ``{"error": message}``."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import tornado.web
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado.ioloop import IOLoop

from bento_jupyter.errors import BentoIntegrityError, BentoJupyterError, BentoNotFoundError
from bento_jupyter.labserver.live_services import kernel_services, stop_service
from bento_jupyter.labserver.settings import read_registry_settings, user_settings_dir
from bento_jupyter.labserver.sources import LocalSource, RegistrySource, notebook_in_root
from bento_jupyter.registry.errors import RegistryError, RegistryUnavailable, Unauthorized

API_PATH = "bento-jupyter/api"


def _status_and_message(exc: Exception, source: Any) -> tuple[int, str]:
    """The one place our exceptions become HTTP answers for the panel."""
    where = f"the registry at {source.url}" if getattr(source, "url", None) else "the local store"
    if isinstance(exc, Unauthorized):
        return 401, f"{where} refused the token: {exc.message}"
    if isinstance(exc, RegistryUnavailable):
        return 502, exc.message
    if isinstance(exc, RegistryError):
        return (502 if exc.status >= 500 else exc.status), exc.message
    if isinstance(exc, BentoNotFoundError):
        return 404, str(exc)
    if isinstance(exc, BentoIntegrityError):
        return 500, f"{where} holds a damaged bento: {exc}"
    if isinstance(exc, BentoJupyterError | ValueError):
        return 400, str(exc)
    return 500, f"internal error ({type(exc).__name__}: {exc}); see the Jupyter server's log"


class BentoHandler(APIHandler):
    """Base of every route: the source is the registry in the user's Bento settings (else the local
    store), never one a request names; answers JSON."""

    def initialize(self, root_dir: str) -> None:
        self.root_dir = root_dir

    def source(self) -> RegistrySource | LocalSource:
        settings = read_registry_settings(user_settings_dir(self.settings.get("serverapp")))
        return RegistrySource(settings.url, settings.token) if settings.url else LocalSource()

    def body(self) -> dict[str, Any]:
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise ValueError("send a JSON object")
        return body

    async def answer(self, work: Callable[[Any], Any]) -> None:
        """Run ``work(source)`` on a worker thread; write its result, or the error, as JSON."""
        source: Any = None

        def run() -> Any:
            nonlocal source
            source = self.source()
            return work(source)

        try:
            result = await IOLoop.current().run_in_executor(None, run)
        except Exception as exc:
            status, message = _status_and_message(exc, source)
            if status >= 500 and not isinstance(exc, RegistryError):
                self.log.exception("bento-jupyter: %s %s failed", self.request.method, self.request.path)
            self.set_status(status)
            self.finish(json.dumps({"error": message}))
            return
        self.finish(json.dumps(result))


class BentosHandler(BentoHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        await self.answer(lambda s: {"source": s.kind, "url": s.url, "bentos": s.bentos()})


class BentoHandlerByName(BentoHandler):
    @tornado.web.authenticated
    async def get(self, name: str) -> None:
        await self.answer(lambda s: {"name": name, "versions": s.versions(name)})


class VersionHandler(BentoHandler):
    @tornado.web.authenticated
    async def get(self, name: str, version: str) -> None:
        def detail(s: Any) -> dict[str, Any]:
            found = s.version(name, version)
            path = notebook_in_root(found["lineage"].get("notebook_path"), self.root_dir)
            return {**found, "notebook": {"path": path}}

        await self.answer(detail)

    @tornado.web.authenticated
    async def delete(self, name: str, version: str) -> None:
        await self.answer(lambda s: s.delete(name, version))


class AliasHandler(BentoHandler):
    @tornado.web.authenticated
    async def put(self, name: str, alias: str) -> None:
        def move(s: Any) -> dict[str, Any]:
            version = self.body().get("version")
            if not isinstance(version, int) or isinstance(version, bool):
                raise ValueError("send {'version': N}")
            return s.set_alias(name, alias, version)

        await self.answer(move)


class AliasHistoryHandler(BentoHandler):
    @tornado.web.authenticated
    async def get(self, name: str, alias: str) -> None:
        await self.answer(lambda s: {"name": name, "alias": alias, "history": s.alias_history(name, alias)})


class RollbackHandler(BentoHandler):
    @tornado.web.authenticated
    async def post(self, name: str, alias: str) -> None:
        def rollback(s: Any) -> dict[str, Any]:
            reason = self.body().get("reason")
            if reason is not None and not isinstance(reason, str):
                raise ValueError("send {'reason': TEXT} (or no reason)")
            return s.rollback(name, alias, reason or None)

        await self.answer(rollback)


class PushHandler(BentoHandler):
    @tornado.web.authenticated
    async def post(self) -> None:
        def push(s: Any) -> dict[str, Any]:
            tag = self.body().get("tag")
            if not isinstance(tag, str) or not tag:
                raise ValueError("send {'tag': 'NAME[:VERSION]'}")
            return s.push(tag)

        await self.answer(push)


class LocalItemsHandler(BentoHandler):
    @tornado.web.authenticated
    async def get(self, kind: str) -> None:
        def listing(_: Any) -> dict[str, Any]:
            local = LocalSource(kind)
            return {"kind": kind, "root": str(local.store.root), "items": local.items()}

        await self.answer(listing)


class KernelServicesHandler(BentoHandler):
    """The live services of one kernel, read from their control routes (works while a cell runs)."""

    @tornado.web.authenticated
    async def get(self, kernel_id: str) -> None:
        await self.answer(lambda _: {"kernel_id": kernel_id, "services": kernel_services(kernel_id)})


class StopServiceHandler(BentoHandler):
    @tornado.web.authenticated
    async def post(self, kernel_id: str, name: str) -> None:
        await self.answer(lambda _: stop_service(kernel_id, name))


_SEGMENT = r"([^/]+)"


def routes(base_url: str, root_dir: str) -> list[tuple[str, type, dict[str, Any]]]:
    """Tornado routes under ``base_url``, each handler knowing the Jupyter root (for notebook paths)."""
    table = [
        (r"bentos", BentosHandler),
        (rf"bentos/{_SEGMENT}", BentoHandlerByName),
        (rf"bentos/{_SEGMENT}/aliases/{_SEGMENT}", AliasHandler),
        (rf"bentos/{_SEGMENT}/aliases/{_SEGMENT}/history", AliasHistoryHandler),
        (rf"bentos/{_SEGMENT}/aliases/{_SEGMENT}/rollback", RollbackHandler),
        (rf"bentos/{_SEGMENT}/{_SEGMENT}", VersionHandler),
        (r"push", PushHandler),
        (r"local/(bentos|models)", LocalItemsHandler),
        (rf"kernels/{_SEGMENT}/services", KernelServicesHandler),
        (rf"kernels/{_SEGMENT}/services/{_SEGMENT}/stop", StopServiceHandler),
    ]
    return [(url_path_join(base_url, API_PATH, path) + "$", handler, {"root_dir": root_dir}) for path, handler in table]
