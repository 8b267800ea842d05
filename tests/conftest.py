"""Shared fixtures: real servers on 127.0.0.1, started and stopped by each test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from bento_jupyter.server.app import ServiceApp
from bento_jupyter.server.runner import ThreadedServer
from bento_jupyter.service.definition import ServiceDefinition
from tests import generation  # noqa: F401  (loads the profile generated inputs are drawn with)


@pytest.fixture
def serve() -> Iterator[Callable[..., ThreadedServer]]:
    """Start a service from functions on a free loopback port; stopped after the test."""
    started: list[ThreadedServer] = []

    def start(name: str, *funcs: Callable[..., Any], **app_options: Any) -> ThreadedServer:
        app = ServiceApp(ServiceDefinition.from_functions(name, funcs), **app_options)
        server = ThreadedServer(app, "127.0.0.1", None)
        server.start()
        server.app = app  # type: ignore[attr-defined]
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
