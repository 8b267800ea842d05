"""Deleting a registry version: refused while aliased, recorded in the history, numbers never reused."""

from __future__ import annotations

import pytest

from bento_jupyter.registry.client.remote import RegistryClient, push
from bento_jupyter.registry.errors import Conflict, Forbidden, InvalidRequest, NotFound
from bento_jupyter.registry.records import Deletion
from tests.registry.conftest import RegistryProcess, make_bento

pytestmark = pytest.mark.integration


def test_deleting_a_version_keeps_the_others_and_never_reuses_its_number(registry: RegistryProcess, local, name):
    for n in range(3):
        make_bento(local, name, handler=f"v = {n}\n")
        push(f"{name}:{n + 1}", registry.url, registry.tokens["write"], store=local)
    writer = RegistryClient(registry.url, registry.tokens["write"])
    writer.move_alias(name, "prod", 2, None)

    with pytest.raises(Conflict, match=f"{name}@prod: move the alias first"):
        writer.delete_version(name, 2)
    with pytest.raises(Forbidden):
        RegistryClient(registry.url, registry.tokens["read"]).delete_version(name, 3)
    with pytest.raises(InvalidRequest, match="numbered version"):
        writer.json("DELETE", f"/bentos/{name}/versions/latest")

    assert writer.delete_version(name, 3) == Deletion(name=name, version=3, deleted=True)
    assert [v.version for v in writer.versions(name)] == [1, 2]
    assert writer.version(name).version == 2  # "latest" is the highest version left
    with pytest.raises(NotFound):
        writer.version(name, 3)
    listed = next(b for b in writer.bentos() if b.name == name)
    assert (listed.latest, listed.versions, listed.aliases) == (2, 2, {"prod": 2})
    deleted = writer.history(name)[-1]
    assert (deleted.action, deleted.from_version, deleted.to_version) == ("delete", 3, None)
    assert deleted.actor == writer.history(name)[0].actor  # the write token that also published

    make_bento(local, name, handler="v = 'new'\n")
    assert push(name, registry.url, registry.tokens["write"], store=local).version == 4


def test_deleting_every_version_hides_the_bento_but_keeps_its_history(registry: RegistryProcess, local, name):
    make_bento(local, name)
    push(name, registry.url, registry.tokens["write"], store=local)
    writer = RegistryClient(registry.url, registry.tokens["write"])
    writer.delete_version(name, 1)
    assert name not in [b.name for b in writer.bentos()]
    with pytest.raises(NotFound, match="no versions"):
        writer.version(name)
    assert [e.action for e in writer.history(name)] == ["publish", "delete"]
