"""Kubernetes and KServe manifests from an exported bundle, validated offline against schemas."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from bento_jupyter.bento.manifest_model import BentoManifest
from bento_jupyter.deploy.bundle import Bundle, DeployOptions
from bento_jupyter.deploy.kserve import inference_service
from bento_jupyter.deploy.kubernetes import kubernetes_objects
from bento_jupyter.errors import DeployError
from bento_jupyter.export.notebook import export_notebook
from tests.integration.kernel_session import NOTEBOOKS

K8S_VERSION = "1.30.0"
KSERVE_SCHEMA = json.loads((Path(__file__).parent / "kserve_inferenceservice.schema.json").read_text())
CLI = [sys.executable, "-m", "bento_jupyter.cli"]


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory):
    return export_notebook(NOTEBOOKS / "quickstart.ipynb", tmp_path_factory.mktemp("dist") / "iris").directory


def deploy(bundle_dir, target, out, *extra):
    done = subprocess.run(
        [*CLI, "deploy", str(bundle_dir), "--target", target, "-o", str(out), *extra],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def gpu_bundle(device: str | None = "cuda:0") -> Bundle:
    api = {"name": "predict", "route": "/predict", "function": "predict", "batchable": True, "max_batch_size": 8}
    manifest = {"name": "gpu_model.v2", "digest": "sha256:" + "ab" * 32, "apis": [{**api, "device": device}]}
    return Bundle(Path("unused"), BentoManifest.model_validate({**manifest, "models": []}))


@pytest.mark.integration
def test_kubernetes_objects_validate_and_carry_probes_resources_and_image(bundle_dir, tmp_path):
    deploy(
        bundle_dir, "kubernetes", tmp_path / "k8s", "--image", "registry.example:5000/ml/iris:1", "--max-replicas", "6"
    )
    documents = list(yaml.safe_load_all((tmp_path / "k8s" / "iris.yaml").read_text()))
    assert [d["kind"] for d in documents] == ["Deployment", "Service", "HorizontalPodAutoscaler"]
    for document in documents:
        kubernetes_validate.validate(document, K8S_VERSION, strict=True)
    container = documents[0]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example:5000/ml/iris:1"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert container["resources"]["requests"] == {"cpu": "500m", "memory": "1Gi"}
    assert "nvidia.com/gpu" not in container["resources"]["limits"]
    assert documents[2]["spec"]["maxReplicas"] == 6
    assert documents[1]["spec"]["selector"] == documents[0]["spec"]["template"]["metadata"]["labels"]


@pytest.mark.integration
def test_kserve_inference_service_validates_and_probes_the_open_inference_routes(bundle_dir, tmp_path):
    deploy(bundle_dir, "kserve", tmp_path / "kserve", "--gpus", "1")
    (document,) = yaml.safe_load_all((tmp_path / "kserve" / "iris.yaml").read_text())
    jsonschema.validate(document, KSERVE_SCHEMA)
    (container,) = document["spec"]["predictor"]["containers"]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "probe"}, "spec": {"containers": [container]}}
    kubernetes_validate.validate(pod, K8S_VERSION, strict=True)  # the core Container schema
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["ports"][0]["containerPort"] == 8080 and {"name": "PORT", "value": "8080"} in container["env"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"


def test_a_bundle_on_cuda_gets_a_gpu_limit_and_a_kubernetes_name():
    objects = kubernetes_objects(gpu_bundle(), DeployOptions())
    for document in objects:
        kubernetes_validate.validate(document, K8S_VERSION, strict=True)
    assert objects[0]["metadata"]["name"] == "gpu-model-v2"
    assert objects[0]["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    cpu_only = inference_service(gpu_bundle(None), DeployOptions())
    jsonschema.validate(cpu_only, KSERVE_SCHEMA)
    assert "nvidia.com/gpu" not in cpu_only["spec"]["predictor"]["containers"][0]["resources"]["limits"]
    assert kubernetes_objects(gpu_bundle(), DeployOptions(gpus=0))[0]["spec"]["template"]["spec"]["containers"][0][
        "resources"
    ]["limits"] == {"memory": "1Gi"}


@pytest.mark.parametrize(
    "options",
    [
        {"image": "iris:1\nUSER root"},
        {"image": "Iris Latest"},
        {"cpu": "1; rm -rf /"},
        {"memory": "lots"},
        {"min_replicas": 3, "max_replicas": 2},
        {"gpus": -1},
    ],
)
def test_options_that_could_inject_or_make_no_sense_are_refused(options):
    with pytest.raises(DeployError):
        DeployOptions(**options)


@pytest.mark.integration
def test_deploy_refuses_a_non_empty_directory_unless_forced(bundle_dir, tmp_path):
    out = tmp_path / "deploy"
    out.mkdir()
    (out / "mine.yaml").write_text("x: 1\n")
    refused = subprocess.run(
        [*CLI, "deploy", str(bundle_dir), "--target", "kubernetes", "-o", str(out)], capture_output=True, text=True
    )
    assert refused.returncode == 2 and "--force" in refused.stderr
    deploy(bundle_dir, "kubernetes", out, "--force")
    assert [p.name for p in out.iterdir()] == ["iris.yaml"]
