"""The registry client retries what is safe to repeat (reads, content-addressed blob PUTs) when a registry is
briefly unavailable, and nothing else. The registry here is a real HTTP server that answers 503 a given number
of times per request line before answering as the registry would."""

from __future__ import annotations

import hashlib
import json
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bento_jupyter.registry.client.remote import RegistryClient
from bento_jupyter.registry.errors import RegistryError


class FlakyRegistry(ThreadingHTTPServer):
    def __init__(self, failures: int) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.failures = failures
        self.seen: Counter[tuple[str, str]] = Counter()
        self.bodies: list[bytes] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: FlakyRegistry

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        key = (self.command, self.path)
        self.server.seen[key] += 1
        self.server.bodies.append(body)
        status, answer = 200, {"versions": [], "version": 1}
        if self.server.seen[key] <= self.server.failures:
            status, answer = 503, {"error": "restarting", "code": "unavailable"}
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_PUT = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def flaky() -> Iterator[FlakyRegistry]:
    server = FlakyRegistry(failures=2)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_a_read_is_retried_until_the_registry_answers(flaky):
    assert RegistryClient(flaky.url).versions("iris") == []
    assert flaky.seen[("GET", "/api/v1/bentos/iris/versions")] == 3


def test_a_blob_put_is_retried_with_its_whole_body_and_progress_ends_at_its_size(flaky, tmp_path):
    blob = tmp_path / "blob"
    blob.write_bytes(b"x" * (3 << 20))
    sha256 = hashlib.sha256(blob.read_bytes()).hexdigest()
    sent: list[int] = []
    RegistryClient(flaky.url).upload_blob(sha256, blob, sent.append)
    assert flaky.seen[("PUT", f"/api/v1/blobs/{sha256}")] == 3
    assert flaky.bodies[-1] == blob.read_bytes()
    assert sum(sent) == blob.stat().st_size  # rewinds took their bytes back


def test_a_publish_or_an_alias_move_is_never_repeated(flaky):
    client = RegistryClient(flaky.url)
    with pytest.raises(RegistryError, match="restarting"):
        client.publish("iris", {"name": "iris"})
    with pytest.raises(RegistryError, match="restarting"):
        client.move_alias("iris", "production", 1, None)
    assert flaky.seen[("POST", "/api/v1/bentos/iris/versions")] == 1
    assert flaky.seen[("PUT", "/api/v1/bentos/iris/aliases/production")] == 1
