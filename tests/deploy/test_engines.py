"""Generated Ray Serve and BentoML applications, run for real on 127.0.0.1, answer like the notebooks."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.export.references import answers, export_all, reference_calls
from tests.integration.bento_process import free_port, wait_ready

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
RAY_PYTHON = ROOT / ".venv-ray" / "bin" / "python"
BENTOML = ROOT / ".venv-bentoml" / "bin" / "bentoml"
CLI = [sys.executable, "-m", "bento_jupyter.cli"]

RAY_DRIVER = """
import importlib, signal, sys, time
import yaml
import ray
from ray import serve
from ray.serve.schema import ServeDeploySchema

signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # exit through atexit: ray.shutdown() stops the cluster
config = yaml.safe_load(open("serve_config.yaml"))
ServeDeploySchema.model_validate(config)  # Ray's own schema for the config file
sys.path.insert(0, ".")
ray.init(num_cpus=2, include_dashboard=False)
serve.start(http_options={**config["http_options"], "host": "127.0.0.1", "port": int(sys.argv[1])})
for app in config["applications"]:
    module, attribute = app["import_path"].split(":")
    serve.run(getattr(importlib.import_module(module), attribute), name=app["name"], route_prefix=app["route_prefix"])
print("READY", flush=True)
while True:
    time.sleep(1)
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    patch = pytest.MonkeyPatch()
    patch.setenv("BENTO_JUPYTER_HOME", str(tmp_path_factory.mktemp("home")))
    try:
        yield export_all(tmp_path_factory.mktemp("dist"))
    finally:
        patch.undo()


def deploy(source: Path, target: str, out: Path, *extra: str) -> None:
    done = subprocess.run(
        [*CLI, "deploy", str(source), "--target", target, "-o", str(out), *extra], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]


@contextlib.contextmanager
def running(command: list[str], cwd: Path, port: int, probe: str, timeout: float) -> Iterator[str]:
    """A server process in its own session, stopped (with everything it spawned) afterwards."""
    process = subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        yield wait_ready(process, port, timeout, probe)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


@pytest.mark.timeout(600)
def test_ray_serve_application_answers_like_the_notebooks(exported, tmp_path):
    if not RAY_PYTHON.exists():
        pytest.skip(".venv-ray is missing: run bash .ci/install")
    combined = tmp_path / "both"
    combined.mkdir()
    for name, directory in exported.items():  # one export directory holding both bundles
        os.symlink(directory / name, combined / name)
    out = tmp_path / "ray"
    deploy(combined, "ray", out, "--cpu", "250m")
    module = (out / "serve_iris.py").read_text()
    assert "@serve.batch(max_batch_size=64, batch_wait_timeout_s=0.01)" in module
    assert "@serve.batch(max_batch_size=32, batch_wait_timeout_s=0.05)" in (out / "serve_spam.py").read_text()
    port = free_port()
    with running([str(RAY_PYTHON), "-c", RAY_DRIVER, str(port)], out, port, "/spam/readyz", 300) as url:
        for name, directory in exported.items():
            calls = reference_calls(directory)
            assert answers(f"{url}/{name}", calls) == [call.expected for call in calls]


@pytest.mark.timeout(600)
@pytest.mark.parametrize("service", ["iris", "spam"])
def test_bentoml_serves_the_generated_service_like_the_notebook(exported, tmp_path, service):
    if not BENTOML.exists():
        pytest.skip(".venv-bentoml is missing: run bash .ci/install")
    out = tmp_path / "bentoml"
    deploy(exported[service], "bentoml", out)
    source = (out / service / "service.py").read_text()
    assert "batchable=True" in source and f"@bentoml.service(name='{service}')" in source
    port = free_port()
    command = [str(BENTOML), "serve", ".", "--host", "127.0.0.1", "--port", str(port)]
    with running(command, out / service, port, "/readyz", 180) as url:
        calls = reference_calls(exported[service])
        assert answers(url, calls) == [call.expected for call in calls]
