"""Two `registry serve` processes on one PostgreSQL and one S3-compatible store act as one registry."""

from __future__ import annotations

import concurrent.futures
import itertools
import random
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from bento_jupyter.bento.local_store import Store
from bento_jupyter.cli.main import build_parser
from bento_jupyter.registry.client.remote import RegistryClient, push
from bento_jupyter.registry.errors import Conflict
from tests.registry.conftest import (
    BUCKET,
    Receiver,
    RegistryProcess,
    create_database,
    free_port,
    make_bento,
    wait_until,
)

pytestmark = pytest.mark.integration
MANIFEST = Path(__file__).parents[2] / "deploy" / "registry" / "kubernetes.yaml"
PUSHES = 32


@pytest.fixture
def replicas(postgres_url, s3_endpoint, tmp_path):
    db = create_database(postgres_url, f"replicas_{tmp_path.name[-16:].lower()}")
    storage = f"s3://{BUCKET}/replicas-{tmp_path.name[-16:]}"
    first = RegistryProcess(db, storage, tmp_path / "a", s3_endpoint, extra=["--upgrade"]).start()
    second = RegistryProcess(db, storage, tmp_path / "b", s3_endpoint, tokens=dict(first.tokens)).start()
    yield first, second
    for process in (first, second):  # no request failed inside a replica either
        process.stop()
        assert "Traceback" not in process.output() and "failed" not in process.output()


def test_concurrent_pushes_across_replicas_get_gap_free_versions_and_alias_moves_stay_linear(replicas, tmp_path, name):
    receiver = Receiver(free_port())
    hook = RegistryClient(replicas[0].url, replicas[0].tokens["admin"]).json(
        "POST", "/webhooks", json={"url": f"http://127.0.0.1:{receiver.port}/", "events": ["publish", "alias"]}
    )
    stores = [Store("bentos", tmp_path / f"home{i}") for i in range(PUSHES)]
    for i, store in enumerate(stores):
        make_bento(store, name, handler=f"v = {i}\n", model=bytes([i]) * 20_000)
    targets = itertools.cycle(replicas)
    jobs = [(store, next(targets)) for store in stores]

    def publish(job: tuple[Store, RegistryProcess]) -> int:
        store, replica = job
        result = push(f"{name}:1", replica.url, replica.tokens["write"], store=store)
        assert result.created
        return result.version

    with concurrent.futures.ThreadPoolExecutor(PUSHES) as pool:
        numbers = sorted(pool.map(publish, jobs))  # any 4xx/5xx answer raises here
    assert numbers == list(range(1, PUSHES + 1))
    a, b = (RegistryClient(r.url, r.tokens["write"]) for r in replicas)
    assert [v.version for v in a.versions(name)] == numbers == [v.version for v in b.versions(name)]

    moves = {"won": 0, "lost": 0}
    rng = random.Random(7)

    def move(client: RegistryClient) -> None:
        for _ in range(4):
            current = client.aliases(name).get("production")
            try:
                client.move_alias(name, "production", rng.randint(1, PUSHES), current)
                moves["won"] += 1
            except Conflict:
                moves["lost"] += 1

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(move, [a, b] * 8))
    events = a.history(name, alias="production")
    assert len(events) == moves["won"] and moves["won"] + moves["lost"] == 64
    assert events[0].from_version is None
    assert all(later.from_version == earlier.to_version for earlier, later in itertools.pairwise(events))
    assert b.aliases(name)["production"] == events[-1].to_version

    # every event is delivered once, though both replicas' dispatchers poll the same outbox
    admin = RegistryClient(replicas[1].url, replicas[1].tokens["admin"])
    expected = PUSHES + moves["won"]
    try:
        wait_until(lambda: len(receiver.received) >= expected, timeout=60)
    finally:
        receiver.close()
    deliveries = [headers["X-Bento-Jupyter-Delivery"] for headers, _ in receiver.received]
    assert len(deliveries) == len(set(deliveries)) == expected
    log = admin.json("GET", f"/webhooks/{hook['id']}/deliveries")["deliveries"]
    assert {d["status"] for d in log} == {"delivered"} and all(d["attempts"] == 1 for d in log)


def test_the_kubernetes_manifest_for_the_registry_validates_and_its_command_parses():
    documents = [d for d in yaml.safe_load_all(MANIFEST.read_text()) if d]
    assert {d["kind"] for d in documents} >= {"Deployment", "Service"}
    for document in documents:
        kubernetes_validate.validate(document, "1.30.0", strict=True)
    deployment = next(d for d in documents if d["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] >= 2
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    command = [*container["command"], *container.get("args", [])]
    assert command[:3] == ["bento-jupyter", "registry", "serve"]
    args = build_parser().parse_args(command[1:])
    assert args.upgrade and args.db == "$(DATABASE_URL)" and args.storage.startswith("s3://")
    probe = container["readinessProbe"]["httpGet"]
    assert probe["path"] == "/api/v1/health" and probe["port"] == container["ports"][0]["name"]
    service = next(d for d in documents if d["kind"] == "Service")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    done = subprocess.run(
        [sys.executable, "-m", "bento_jupyter.cli", *command[1:], "--help"], capture_output=True, text=True
    )
    assert done.returncode == 0
