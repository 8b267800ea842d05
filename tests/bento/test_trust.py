"""Nothing in a bento executes code on load without an explicit decision, and loaders open only verified files."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from bento_jupyter.bento.loader import load_bento
from bento_jupyter.bento.local_store import Store
from bento_jupyter.bento.manifest import write_manifest
from bento_jupyter.bento.manifest_model import BentoManifest
from bento_jupyter.bento.trust import TrustPolicy, UntrustedCodeError, remember_built
from bento_jupyter.errors import BentoIntegrityError
from tests.bento.hostile import API, SERVICE, pickle_bento


def cli(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "BENTO_JUPYTER_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "bento_jupyter.cli", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_a_pickle_marked_harmless_in_its_manifest_is_still_refused(tmp_path):
    marker = tmp_path / "pwned"
    pickle_bento(tmp_path / "b", marker)  # code_executing: false, digest recomputed: a valid manifest
    with pytest.raises(UntrustedCodeError) as refused:
        load_bento(tmp_path / "b", TrustPolicy())
    assert "models/m.pkl" in str(refused.value) and "--trust-code" in str(refused.value)
    assert not marker.exists()


def test_trust_code_is_what_lets_the_pickle_load(tmp_path):
    marker = tmp_path / "pwned"
    pickle_bento(tmp_path / "b", marker)
    definition, _ = load_bento(tmp_path / "b", TrustPolicy(trust_code=True))
    assert marker.exists() and "/predict" in definition.apis


def test_the_kernel_that_built_a_bento_trusts_exactly_that_digest(tmp_path):
    marker = tmp_path / "pwned"
    manifest = pickle_bento(tmp_path / "b", marker)
    remember_built(manifest["digest"])
    load_bento(tmp_path / "b", TrustPolicy())
    assert marker.exists()
    marker.unlink()
    other = pickle_bento(tmp_path / "c", marker, name="other")
    assert other["digest"] != manifest["digest"]
    with pytest.raises(UntrustedCodeError):
        load_bento(tmp_path / "c", TrustPolicy())
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["numpy", "sklearn", "torch"])
def test_renaming_the_loader_in_the_manifest_never_unpickles(tmp_path, kind):
    marker = tmp_path / "pwned"
    files = ["m.pkl", "m.pkl"] if kind == "torch" else ["m.pkl"]
    pickle_bento(tmp_path / "b", marker, kind=kind, files=files)
    with pytest.raises((UntrustedCodeError, BentoIntegrityError, ValueError, pickle.UnpicklingError, RuntimeError)):
        load_bento(tmp_path / "b", TrustPolicy())
    assert not marker.exists()


def test_a_torch_architecture_naming_a_torch_function_is_refused(tmp_path):
    torch = pytest.importorskip("torch")
    marker = tmp_path / "pwned"

    class Call:
        def __reduce__(self):
            return (torch.serialization.save, ({}, str(marker)))  # a torch.* function: would write marker

    root = tmp_path / "b"
    (root / "src").mkdir(parents=True)
    (root / "src" / "service.py").write_text(SERVICE)
    (root / "models").mkdir()
    torch.save(Call(), root / "models" / "m.arch.pt")
    from safetensors.torch import save_model

    save_model(torch.nn.Linear(1, 1), str(root / "models" / "m.safetensors"))
    entry = {"name": "m", "kind": "torch", "files": ["m.safetensors", "m.arch.pt"]}
    write_manifest(
        root,
        BentoManifest.model_validate(
            {"kind": "bento", "name": "t", "source": "src/service.py", "apis": [], "models": [entry]}
        ),
    )
    with pytest.raises(BentoIntegrityError, match=r"torch\.serialization\.save"):
        load_bento(root, TrustPolicy())
    assert not marker.exists()


@pytest.mark.parametrize(
    ("files", "refusal"),
    [
        (["../../../../outside.pkl"], "not one of its verified files"),
        (["../outside.pkl"], "not one of its verified files"),
        (["/tmp/outside.pkl"], "not one of its verified files"),
        (["nothere.pkl"], "not one of its verified files"),
        ([7], r"field 'models\.0\.files\.0': Input should be a valid string"),
    ],
)
def test_model_paths_outside_the_verified_files_are_refused_before_reading(tmp_path, files, refusal):
    marker = tmp_path / "pwned"
    outside = tmp_path / "outside.pkl"
    outside.write_bytes(pickle.dumps(__import__("tests.bento.hostile").bento.hostile.Payload(marker)))
    pickle_bento(tmp_path / "b" / "c", marker, files=files)
    with pytest.raises(BentoIntegrityError, match=refusal):
        load_bento(tmp_path / "b" / "c", TrustPolicy(trust_code=True))
    assert not marker.exists()


def test_a_source_outside_the_bento_is_refused(tmp_path):
    root = tmp_path / "b"
    pickle_bento(root, tmp_path / "pwned")
    (tmp_path / "evil.py").write_text(f"open({str(tmp_path / 'ran')!r}, 'w')\n")
    manifest = json.loads((root / "bento.yaml").read_text())
    manifest["source"] = "../evil.py"
    write_manifest(
        root,
        BentoManifest.model_validate(
            {k: v for k, v in manifest.items() if k not in ("files", "digest", "schema_version")}
        ),
    )
    with pytest.raises(BentoIntegrityError, match=r"'\.\./evil\.py'"):
        load_bento(root, TrustPolicy(trust_code=True))
    assert not (tmp_path / "ran").exists()


def test_a_symlinked_file_is_refused_even_when_its_digest_matches(tmp_path):
    root = tmp_path / "b"
    pickle_bento(root, tmp_path / "pwned")
    target = tmp_path / "elsewhere.pkl"
    os.replace(root / "models" / "m.pkl", target)
    (root / "models" / "m.pkl").symlink_to(target)
    with pytest.raises(BentoIntegrityError, match="symbolic link"):
        load_bento(root, TrustPolicy(trust_code=True))
    assert not (tmp_path / "pwned").exists()


def test_serve_refuses_naming_the_files_and_the_flag_and_show_warns(tmp_path):
    marker = tmp_path / "pwned"
    home = tmp_path / "home"
    Store("bentos", home).add("evil", lambda root: pickle_bento(root, marker))
    refused = cli(home, "serve", "evil:1", "--port", "0")
    assert refused.returncode == 2
    assert "models/m.pkl" in refused.stderr and "--trust-code" in refused.stderr
    assert not marker.exists()
    shown = cli(home, "bentos", "show", "evil:1")
    assert "(pickle: executes code on load)" in shown.stdout and "--trust-code" in shown.stdout


def test_show_names_the_source_that_runs_on_serve_and_how_to_accept_only_trusted_builders(tmp_path):
    home = tmp_path / "home"

    def plain(root: Path) -> None:
        (root / "src").mkdir()
        (root / "src" / "service.py").write_text(SERVICE)
        write_manifest(
            root,
            BentoManifest.model_validate(
                {
                    "kind": "bento",
                    "name": "plain",
                    "source": "src/service.py",
                    "apis": [API],
                    "models": [],
                    "lineage": {},
                }
            ),
        )

    Store("bentos", home).add("plain", plain)
    shown = cli(home, "bentos", "show", "plain:1").stdout
    assert "runs on serve: src/service.py" in shown and "--require-signature" in shown
    assert "executes code on load" not in shown  # no pickle: --trust-code is not needed


def test_deploy_refuses_a_pickle_bento_unless_trusted_and_then_passes_the_decision_on(tmp_path):
    from bento_jupyter.deploy.bundle import DeployOptions
    from bento_jupyter.deploy.targets import deploy

    manifest = pickle_bento(tmp_path / "b", tmp_path / "pwned")
    with pytest.raises(UntrustedCodeError, match="--trust-code"):
        deploy(str(tmp_path / "b"), "kubernetes", tmp_path / "k8s", DeployOptions())
    assert not (tmp_path / "k8s").exists()
    deploy(str(tmp_path / "b"), "kubernetes", tmp_path / "k8s", DeployOptions(), trust_code=True)
    assert "- --trust-code" in (tmp_path / "k8s" / "evil.yaml").read_text()
    deploy(str(tmp_path / "b"), "ray", tmp_path / "ray", DeployOptions(), trust_code=True)
    assert f"TRUSTED_DIGEST = {manifest['digest']!r}" in (tmp_path / "ray" / "serve_evil.py").read_text()
    assert not (tmp_path / "pwned").exists()


def test_a_bento_signed_by_a_trusted_key_loads_its_pickle_and_one_signed_by_another_does_not(tmp_path):
    from bento_jupyter.bento.signing import sign_bento
    from bento_jupyter.errors import BentoSignatureError
    from tests.bento.test_signing import write_key_pair

    marker = tmp_path / "pwned"
    (tmp_path / "ours").mkdir()
    (tmp_path / "theirs").mkdir()
    alice, _ = write_key_pair(tmp_path / "ours", "alice")
    mallory, _ = write_key_pair(tmp_path / "theirs", "mallory")
    trusted = tmp_path / "ours" / "trusted"
    pickle_bento(tmp_path / "a", marker)
    sign_bento(tmp_path / "a", alice)
    load_bento(tmp_path / "a", TrustPolicy(trusted_keys=trusted))
    assert marker.exists()
    marker.unlink()
    pickle_bento(tmp_path / "m", marker, name="m")
    sign_bento(tmp_path / "m", mallory)
    with pytest.raises(BentoSignatureError):
        load_bento(tmp_path / "m", TrustPolicy(trusted_keys=trusted))
    assert not marker.exists()
