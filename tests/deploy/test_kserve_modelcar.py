"""``deploy --target kserve --storage-uri oci://...``: an InferenceService that takes the bento from a KServe
modelcar, validated offline; and the container entrypoint that verifies the signature when keys are mounted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import requests
import yaml
from dockerfile_parse import DockerfileParser

from bento_jupyter.bento.local_store import Store
from bento_jupyter.bento.signing import sign_bento
from tests.bento.test_signing import write_key_pair
from tests.deploy.test_manifests import CLI, K8S_VERSION, KSERVE_SCHEMA
from tests.integration.bento_process import free_port, wait_ready
from tests.oci.conftest import build_demo

STORAGE_URI = "oci://127.0.0.1:5000/team/demo:1"


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    store = Store("bentos", tmp_path_factory.mktemp("home"))
    build_demo(store, offsets=(5,))
    return store.resolve("demo:1").path


def _deploy(source: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, "deploy", str(source), "--target", "kserve", "-o", str(out), *extra],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_inference_service_takes_the_bento_from_the_modelcar_and_mounts_the_keys(demo, tmp_path):
    done = _deploy(demo, tmp_path / "out", "--storage-uri", STORAGE_URI, "--trusted-keys-secret", "bento-keys")
    assert done.returncode == 0, done.stderr
    (document,) = yaml.safe_load_all((tmp_path / "out" / "demo.yaml").read_text())
    jsonschema.validate(document, KSERVE_SCHEMA)
    predictor = document["spec"]["predictor"]
    (container,) = predictor["containers"]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "probe"}, "spec": {**predictor}}
    del pod["spec"]["minReplicas"], pod["spec"]["maxReplicas"]
    kubernetes_validate.validate(pod, K8S_VERSION, strict=True)  # the container, its mounts and the volumes
    assert {"name": "STORAGE_URI", "value": STORAGE_URI} in container["env"]
    assert container["name"] == "kserve-container"  # the container whose STORAGE_URI KServe reads
    assert container["command"] == ["sh", "/mnt/models/env/entrypoint.sh"]
    assert container["volumeMounts"] == [
        {"name": "trusted-keys", "mountPath": "/etc/bento-jupyter/trusted-keys", "readOnly": True}
    ]
    assert predictor["volumes"] == [{"name": "trusted-keys", "secret": {"secretName": "bento-keys"}}]


def test_the_modelcar_dockerfile_puts_the_bento_under_models_with_a_shell(demo, tmp_path):
    assert _deploy(demo, tmp_path / "out", "--storage-uri", STORAGE_URI).returncode == 0
    parser = DockerfileParser(str(tmp_path / "out" / "demo.modelcar.Dockerfile"))
    instructions = [(i["instruction"], i["value"]) for i in parser.structure if i["instruction"] != "COMMENT"]
    assert instructions[0] == ("FROM", "busybox:1.36")
    assert ("COPY", ". /models/") in instructions
    assert "docker push 127.0.0.1:5000/team/demo:1" in parser.content


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--storage-uri", "s3://bucket/demo"], "invalid --storage-uri"),
        (["--storage-uri", "oci://127.0.0.1:5000/team/demo"], "name a tag or a digest"),
        (["--trusted-keys-secret", "Bad_Name"], "invalid --trusted-keys-secret"),
    ],
)
def test_bad_storage_uris_and_secret_names_are_refused(demo, tmp_path, extra, message):
    done = _deploy(demo, tmp_path / "out", *extra)
    assert done.returncode == 2 and message in done.stderr and not (tmp_path / "out").exists()


def test_storage_uri_is_only_for_kserve(demo, tmp_path):
    done = subprocess.run(
        [*CLI, "deploy", str(demo), "--target", "ray", "-o", str(tmp_path / "o"), "--storage-uri", STORAGE_URI],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "--storage-uri is for --target kserve" in done.stderr


@pytest.mark.integration
def test_the_entrypoint_requires_a_signature_only_when_keys_are_mounted(demo, tmp_path):
    private, _ = write_key_pair(tmp_path, "ops")
    bento = tmp_path / "bento"
    subprocess.run(["cp", "-r", str(demo), str(bento)], check=True)
    bin_dir = os.path.dirname(sys.executable)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "BENTO_JUPYTER_TRUSTED_KEYS": str(tmp_path / "trusted"),
    }

    def start(environment: dict[str, str]) -> tuple[subprocess.Popen, int]:
        port = free_port()
        process = subprocess.Popen(
            ["sh", str(bento / "env" / "entrypoint.sh"), "--host", "127.0.0.1"],
            env={**environment, "PORT": str(port)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        return process, port

    refused, _ = start(env)
    assert refused.wait(60) == 2 and "is not signed" in refused.stdout.read()
    sign_bento(bento, private)
    for environment in (env, {**env, "BENTO_JUPYTER_TRUSTED_KEYS": str(tmp_path / "no-keys-mounted")}):
        process, port = start(environment)
        try:
            url = wait_ready(process, port, 60)
            assert requests.post(f"{url}/predict", json={"x": [0.0, 1.0, 0.0]}, timeout=30).json() == [9, 10, 11, 12]
        finally:
            process.terminate()
            process.wait(15)
