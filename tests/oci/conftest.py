"""A real OCI registry for the tests: Debian's ``docker-registry`` (Docker Distribution) on 127.0.0.1, with
and without htpasswd auth; and real bentos built by the ``%bento`` magics on a bare InteractiveShell."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from bento_jupyter.bento.local_store import Store
from tests.integration.bento_process import free_port
from tests.oci.token_service import ISSUER, SERVICE, TokenService, start_token_service
from tests.registry.conftest import _stop, _wait

USER, PASSWORD = "alice", "s3cret-pass"


@dataclass
class Distribution:
    """One ``docker-registry serve`` process and the directory its blobs live in."""

    host: str  # 127.0.0.1:PORT
    storage: Path
    auth: bool

    def url(self, repository: str, tag: str | None = None) -> str:
        return f"oci://{self.host}/{repository}" + (f":{tag}" if tag else "")

    def blob_path(self, digest: str) -> Path:
        hex_digest = digest.removeprefix("sha256:")
        return self.storage / "docker/registry/v2/blobs/sha256" / hex_digest[:2] / hex_digest / "data"


def _htpasswd_line() -> str:
    """``USER:bcrypt-hash``, the only htpasswd format Docker Distribution accepts (cost 4: it is checked on every
    request)."""
    bcrypt = pytest.importorskip("bcrypt", reason="bcrypt (test extra) hashes the registry's htpasswd password")
    return f"{USER}:{bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()}\n"


@contextlib.contextmanager
def distribution(root: Path, auth: bool, token: TokenService | None = None) -> Iterator[Distribution]:
    program = shutil.which("docker-registry")
    if program is None:
        pytest.skip("docker-registry (Docker Distribution) not found: apt-get install docker-registry")
    port = free_port()
    auth_section = ""
    if auth:
        (root / "htpasswd").write_text(_htpasswd_line())
        auth_section = f"auth:\n  htpasswd:\n    realm: bento-tests\n    path: {root / 'htpasswd'}\n"
    if token:
        auth_section = (
            f"auth:\n  token:\n    realm: {token.url}\n    service: {SERVICE}\n    issuer: {ISSUER}\n"
            f"    rootcertbundle: {token.certificate}\n"
        )
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: error\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n{auth_section}"
    )
    with open(root / "registry.log", "wb") as log:
        process = subprocess.Popen([program, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait(
            lambda: requests.get(f"http://127.0.0.1:{port}/v2/", timeout=1).status_code in (200, 401),
            "docker-registry",
            30,
            process,
        )
        yield Distribution(f"127.0.0.1:{port}", root / "data", auth or token is not None)
    finally:
        _stop(process)


@pytest.fixture(scope="module")
def open_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Distribution]:
    with distribution(tmp_path_factory.mktemp("distribution"), auth=False) as registry:
        yield registry


@pytest.fixture(scope="module")
def htpasswd_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Distribution]:
    with distribution(tmp_path_factory.mktemp("distribution-auth"), auth=True) as registry:
        yield registry


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Distribution, TokenService]]:
    """Distribution in token mode: a bearer token from ``token_service`` for every request."""
    root = tmp_path_factory.mktemp("distribution-token")
    token = start_token_service(root, USER, PASSWORD)
    try:
        with distribution(root, auth=False, token=token) as registry:
            yield registry, token
    finally:
        token.close()


WEIGHTS = "np.arange(12.0).reshape(3, 4)"


def handler(offset: int) -> str:
    return f"def predict(x: list[float]) -> list[float]:\n    return (np.asarray(x) @ WEIGHTS + {offset}).tolist()\n"


def build_demo(store: Store, offsets: tuple[int, ...] = (0, 100)) -> None:
    """Versions of ``demo`` in ``store`` built by ``%bento build``: one per offset, all with the same WEIGHTS."""
    from IPython.core.interactiveshell import InteractiveShell

    from bento_jupyter.server.running import services

    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "bento_jupyter")
    shell.run_cell(f"import numpy as np\nWEIGHTS = {WEIGHTS}", cell_id="weights")
    patch = pytest.MonkeyPatch()
    patch.setenv("BENTO_JUPYTER_HOME", str(store.root.parent))
    try:
        for offset in offsets:
            shell.run_cell(f"%%bento serve demo\n{handler(offset)}", cell_id="serve").raise_error()
            shell.run_cell("%bento build demo", cell_id="build").raise_error()
    finally:
        services.stop_all()
        patch.undo()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """``demo:1`` and ``demo:2``: same model (WEIGHTS), different handlers (offset 0 and 100)."""
    store = Store("bentos", tmp_path_factory.mktemp("home"))
    build_demo(store)
    assert [item.tag for item in store.list()] == ["demo:1", "demo:2"]
    return store
