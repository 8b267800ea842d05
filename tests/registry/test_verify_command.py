"""`bento-jupyter verify NAME:N --registry`: the registry's version is pulled, its samples replayed, and
the result recorded there, which is what an alias that requires `verified` waits for."""

from __future__ import annotations

import pytest
import requests
from IPython.core.interactiveshell import InteractiveShell

from bento_jupyter.bento.local_store import Store
from bento_jupyter.cli.main import main
from bento_jupyter.registry.client.remote import RegistryClient, push
from bento_jupyter.registry.errors import PromotionRefused
from bento_jupyter.server.running import services

pytestmark = pytest.mark.integration

SERVE = """%%bento serve {name}
def scale(v: list) -> list:
    return [x * GAIN for x in v]
"""


@pytest.fixture
def shell(tmp_path, monkeypatch):
    monkeypatch.setenv("BENTO_JUPYTER_HOME", str(tmp_path / "home"))
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "bento_jupyter")
    yield ip
    services.stop_all()


def build(shell: InteractiveShell, name: str, gain: float) -> None:
    shell.run_cell(f"GAIN = {gain}").raise_error()
    shell.run_cell(SERVE.format(name=name), cell_id=f"serve-{name}").raise_error()
    url = services.get(name).url
    for v in ([1, 2], [3.5]):
        assert requests.post(f"{url}/scale", json={"v": v}, timeout=10).status_code == 200
    shell.run_line_magic("bento", f"build {name}")


def test_a_verification_recorded_by_the_command_lets_a_verified_alias_move(shell, sqlite_registry, name, capsys):
    write = RegistryClient(sqlite_registry.url, sqlite_registry.tokens["write"])
    admin = RegistryClient(sqlite_registry.url, sqlite_registry.tokens["admin"])
    for n, gain in ((1, 1.25), (2, 1.5)):
        build(shell, name, gain)
        assert (
            push(f"{name}:{n}", sqlite_registry.url, sqlite_registry.tokens["write"], store=Store("bentos")).version
            == n
        )
    write.move_alias(name, "production", 1, None)
    admin.set_policy(name, "production", ["compatible", "verified"])
    with pytest.raises(PromotionRefused, match="no passing verification"):
        write.move_alias(name, "production", 2, 1)

    remote = ["--url", sqlite_registry.url, "--token", sqlite_registry.tokens["write"]]
    assert main(["verify", f"{name}:2", "--registry", *remote]) == 0
    captured = capsys.readouterr()
    assert "verified: 2 sample(s)" in captured.out and f"recorded in the registry: {name}:2 passed" in captured.err
    (recorded,) = write.json("GET", f"/bentos/{name}/versions/2/verifications")["verifications"]
    assert recorded["passed"] and recorded["report"]["replayed"] == 2 and recorded["actor"].startswith("test-write")
    assert write.move_alias(name, "production", 2, 1).version == 2
