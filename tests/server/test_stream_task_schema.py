"""Generated requests (schemathesis, from /docs.json) to stream and task routes: answers match the document."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from bento_jupyter import api


def generate(prompt: str, n: int = 3) -> Iterator[str]:
    for i in range(min(n, 5)):
        yield f"{prompt} {i}"


async def progress(steps: int = 2) -> AsyncIterator[dict]:
    for step in range(min(steps, 4)):
        await asyncio.sleep(0)
        yield {"step": step}
    if steps > 4:
        raise ValueError("at most 4 steps")  # the stream then ends with an error event


@api(task=True)
def score(rows: list[list[float]]) -> dict:
    return {"n": len(rows)}


OPERATIONS = [
    ("/generate", "POST"),
    ("/progress", "POST"),
    ("/score", "POST"),
    ("/score/submit", "POST"),
    ("/score/status", "GET"),
    ("/score/get", "GET"),
    ("/score/cancel", "PUT"),
    ("/score/retry", "POST"),
]


@pytest.fixture(scope="module")
def schema(tmp_path_factory):
    from bento_jupyter.server.app import ServiceApp
    from bento_jupyter.server.runner import ThreadedServer
    from bento_jupyter.service.definition import ServiceDefinition

    definition = ServiceDefinition.from_functions("schema", [generate, progress, score])
    server = ThreadedServer(ServiceApp(definition, task_home=tmp_path_factory.mktemp("tasks")), "127.0.0.1", None)
    server.start()
    yield schemathesis.openapi.from_url(f"{server.url}/docs.json")
    server.stop()


@pytest.mark.parametrize(("path", "verb"), OPERATIONS)
def test_generated_requests_get_answers_the_document_describes(schema, path, verb):
    @given(case=schema[path][verb].as_strategy())
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    def check(case):
        case.call_and_validate()

    check()
