"""Real backends for the registry tests: a PostgreSQL cluster, an S3-compatible server (moto), and
registry processes started with ``python -m bento_jupyter.cli registry serve``; all on 127.0.0.1, all
stopped by PID when the tests end."""

from __future__ import annotations

import contextlib
import glob
import hashlib
import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from bento_jupyter.bento.local_store import Store, StoredItem
from bento_jupyter.bento.manifest import write_manifest
from bento_jupyter.bento.manifest_model import BentoManifest

S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
BUCKET = "bentos"
_names = itertools.count(1)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait(check: Any, what: str, timeout: float = 30, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        with contextlib.suppress(Exception):
            if check():
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not start within {timeout}s")
        time.sleep(0.1)


def _stop(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


# -- PostgreSQL -----------------------------------------------------------------------------------


def _postgres_bindir() -> Path | None:
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(candidate, "initdb").exists() and Path(candidate, "postgres").exists():
            return Path(candidate)
    found = shutil.which("initdb")
    return Path(found).parent if found and Path(found).with_name("postgres").exists() else None


_POSTGRES_SETTINGS = [
    *("-c", "listen_addresses=127.0.0.1"),
    *("-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"),
    *("-c", "max_connections=200"),
]


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on a free loopback port (as the ``postgres`` user when we are root)."""
    bindir = _postgres_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, postgres) not found: apt-get install postgresql")
    as_user: dict[str, Any] = {}
    root = Path(tempfile.mkdtemp(prefix="bj-registry-pg-"))
    if os.geteuid() == 0:
        import pwd

        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' OS user to run the server")
        os.chown(root, owner.pw_uid, owner.pw_gid)
        as_user = {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}
    data, log = root / "data", root / "postgres.log"
    env = {**os.environ, "LC_ALL": "C.UTF-8"}
    subprocess.run(
        [bindir / "initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"],
        check=True,
        capture_output=True,
        cwd=root,
        env=env,
        **as_user,
    )
    port = free_port()
    with open(log, "wb") as log_file:
        process = subprocess.Popen(
            [bindir / "postgres", "-D", data, "-p", str(port), "-k", root, *_POSTGRES_SETTINGS],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=root,
            env=env,
            **as_user,
        )
    url = f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    try:
        import psycopg

        def ready() -> bool:
            with psycopg.connect(f"host=127.0.0.1 port={port} user=postgres dbname=postgres", connect_timeout=2):
                return True

        _wait(ready, "postgres", 60, process)
        yield url
    finally:
        _stop(process, signal.SIGINT)  # fast shutdown
        shutil.rmtree(root, ignore_errors=True)


def create_database(server_url: str, name: str) -> str:
    import psycopg

    port = server_url.rsplit(":", 1)[1]
    with psycopg.connect(f"host=127.0.0.1 port={port} user=postgres dbname=postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{server_url}/{name}"


# -- S3 (moto) ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3-compatible server on a free loopback port, with a bucket ``bentos``."""
    pytest.importorskip("moto.server", reason="moto[server] is a test dependency: pip install 'moto[server]'")
    boto3 = pytest.importorskip("boto3")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **S3_ENV},
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: requests.get(endpoint, timeout=1).status_code < 500, "moto_server", 60, process)
        s3_client(boto3, endpoint).create_bucket(Bucket=BUCKET)
        yield endpoint
    finally:
        _stop(process)


def s3_client(boto3: Any, endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=S3_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=S3_ENV["AWS_SECRET_ACCESS_KEY"],
        region_name=S3_ENV["AWS_DEFAULT_REGION"],
    )


# -- registry processes ---------------------------------------------------------------------------


@dataclass
class RegistryProcess:
    """``python -m bento_jupyter.cli registry serve`` in a subprocess, with tokens of every scope."""

    db: str
    storage: str
    home: Path
    s3_endpoint: str | None = None
    extra: list[str] = field(default_factory=list)
    open: bool = False
    url: str = ""
    tokens: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen | None = None
    log: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None

    def env(self) -> dict[str, str]:
        return {**os.environ, **S3_ENV, "BENTO_JUPYTER_HOME": str(self.home)}

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "bento_jupyter.cli", *args]

    def start(self) -> RegistryProcess:
        args = ["registry", "serve", "--port", "0", "--db", self.db, "--storage", self.storage, *self.extra]
        if self.s3_endpoint:
            args += ["--s3-endpoint", self.s3_endpoint]
        if self.open:
            args.append("--open")
        self.process = subprocess.Popen(
            self.command(*args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=self.env()
        )
        assert self.process.stdout is not None
        first = self.process.stdout.readline()
        if "listening on" not in first:
            self.process.wait(10)
            raise RuntimeError(f"registry did not start: {first}{self.process.stdout.read()}")
        self.url = first.split()[-1]
        # Drain the log: a full pipe would block the registry on its next write (a traceback, say).
        self.reader = threading.Thread(target=self._keep_log, args=(self.process.stdout,), daemon=True)
        self.reader.start()
        _wait(lambda: requests.get(f"{self.url}/api/v1/health", timeout=2).ok, "registry", 30, self.process)
        if not self.tokens and not self.open:
            admin = self.create_token_with_cli("admin")
            self.tokens["admin"] = admin
            for scope in ("read", "write"):
                answer = requests.post(
                    f"{self.url}/api/v1/tokens",
                    json={"scope": scope, "name": f"test-{scope}"},
                    headers={"Authorization": f"Bearer {admin}"},
                    timeout=10,
                )
                self.tokens[scope] = answer.json()["token"]
        return self

    def _keep_log(self, stream: Any) -> None:
        for line in stream:
            self.log.append(line)

    def output(self) -> str:
        """What the registry printed (once stopped: all of it)."""
        return "".join(self.log)

    def create_token_with_cli(self, scope: str) -> str:
        done = subprocess.run(
            self.command("registry", "token", "create", "--scope", scope, "--name", f"test-{scope}", "--db", self.db),
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=60,
            check=True,
        )
        return done.stdout.strip()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None:
            _stop(self.process, sig)
            if self.reader is not None:
                self.reader.join(10)
            if self.process.stdout is not None:
                self.process.stdout.close()

    def headers(self, scope: str = "write") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[scope]}"} if self.tokens else {}

    def api(self, method: str, path: str, scope: str = "write", **kwargs: Any) -> requests.Response:
        headers = {**self.headers(scope), **kwargs.pop("headers", {})}
        return requests.request(method, f"{self.url}/api/v1{path}", headers=headers, timeout=30, **kwargs)

    def corrupt_blob(self, sha256: str) -> None:
        """Replace a stored blob's bytes behind the registry's back (same size, different content)."""
        if self.storage.startswith("s3://"):
            import boto3

            bucket, _, prefix = self.storage.removeprefix("s3://").partition("/")
            client = s3_client(boto3, self.s3_endpoint or "")
            key = f"{prefix.strip('/')}/sha256/{sha256[:2]}/{sha256}".lstrip("/")
            size = client.head_object(Bucket=bucket, Key=key)["ContentLength"]
            client.put_object(Bucket=bucket, Key=key, Body=b"\xff" * size)
            return
        path = Path(self.storage.removeprefix("file://")) / "sha256" / sha256[:2] / sha256
        size = path.stat().st_size
        path.chmod(0o644)
        path.write_bytes(b"\xff" * size)


BACKENDS = ["sqlite-local", "postgres-local", "sqlite-s3", "postgres-s3"]


@contextlib.contextmanager
def local_registry(root: Path) -> Iterator[RegistryProcess]:
    """A token-protected registry process on SQLite and local disk under ``root``."""
    process = RegistryProcess(f"sqlite:///{root / 'registry.db'}", f"file://{root / 'blobs'}", root / "home").start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def sqlite_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    """A token-protected registry on SQLite and local disk, for tests that need one backend only."""
    with local_registry(tmp_path_factory.mktemp("registry")) as process:
        yield process


@pytest.fixture(scope="session", params=BACKENDS)
def registry(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    """One registry process per backend combination, shared by the contract tests (names keep them apart)."""
    database, storage = request.param.split("-")
    root = tmp_path_factory.mktemp(request.param)
    if database == "postgres":
        db = create_database(request.getfixturevalue("postgres_url"), request.param.replace("-", "_"))
    else:
        db = f"sqlite:///{root / 'registry.db'}"
    endpoint = None
    if storage == "s3":
        endpoint = request.getfixturevalue("s3_endpoint")
        blobs = f"s3://{BUCKET}/{request.param}"
    else:
        blobs = f"file://{root / 'blobs'}"
    process = RegistryProcess(db, blobs, root / "home", endpoint).start()
    yield process
    process.stop()


def wait_until(check: Any, timeout: float = 30) -> Any:
    """Poll ``check`` every 0.1 s until it returns something true; return that."""
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
    return result


class Receiver:
    """A webhook receiver: an HTTP server on 127.0.0.1 that records each POST and answers ``status``."""

    def __init__(self, port: int, status: int = 204) -> None:
        self.port, self.status = port, status
        self.received: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((dict(self.headers), body))
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def name() -> str:
    """A bento name no other test uses."""
    return f"b{next(_names)}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def local(tmp_path: Path) -> Store:
    """A local bento store of the test's own."""
    return Store("bentos", tmp_path / "home")


def make_bento(
    store: Store,
    name: str,
    handler: str = "def predict(x):\n    return x\n",
    model: bytes = b"\x00" * 4096,
    notebook: str = "notebooks/train.ipynb",
    cells: list[dict[str, Any]] | None = None,
    commit: str = "0123456789abcdef0123456789abcdef01234567",
) -> StoredItem:
    """A small but real bento: source, model weights, manifest with lineage."""

    source = {"source_sha256": hashlib.sha256(handler.encode()).hexdigest(), "source": handler}

    def fill(root: Path) -> None:
        (root / "src").mkdir()
        (root / "src" / "service.py").write_text(handler)
        (root / "models").mkdir()
        (root / "models" / "weights.bin").write_bytes(model)
        lineage = {
            "notebook_path": notebook,
            "kernel_id": "kernel-1",
            "cells": cells if cells is not None else [{"cell_id": "cell-a", "execution_count": 1, **source}],
            "git": {"commit": commit, "branch": "main", "dirty": False},
            "built_at": "2025-01-01T00:00:00Z",
            "built_by": "tester",
        }
        write_manifest(root, BentoManifest.model_validate({"kind": "bento", "name": name, "lineage": lineage}))

    return store.add(name, fill)
