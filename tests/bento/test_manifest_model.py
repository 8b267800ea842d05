"""The typed manifest: bentos built by an older release still load, unknown fields are kept, bad fields are named."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bento_jupyter.bento.loader import load_bento
from bento_jupyter.bento.manifest import manifest_digest, manifest_file_bytes, read_manifest, write_manifest
from bento_jupyter.bento.manifest_model import BentoManifest, Lineage
from bento_jupyter.bento.trust import TrustPolicy
from bento_jupyter.errors import InvalidManifest

# Built by bento_jupyter at main 817aba1, before the manifest had a model: its bytes are what a user has on disk.
OLD_BENTO = Path(__file__).parent / "fixtures" / "bento-main-817aba1"
WRITTEN_FIELDS = ("schema_version", "files", "digest")


def test_a_bento_built_before_the_model_loads_and_answers(tmp_path):
    root = shutil.copytree(OLD_BENTO, tmp_path / "old")
    definition, manifest = load_bento(root, TrustPolicy(trust_code=True))
    assert manifest.digest == json.loads((OLD_BENTO / "bento.yaml").read_text())["digest"]
    (api,) = manifest.apis
    assert (api.max_batch_size, api.max_latency_ms, api.timeout, api.max_concurrency) == (8, 5, 2.5, 3)
    assert manifest.served_settings.max_body_mb == 8.5 and manifest.served_settings.request_timeout == 30.5
    assert [(m.name, m.kind, m.executes_code) for m in manifest.models] == [
        ("weights", "numpy", False),
        ("scale", "pickle", True),
    ]
    assert manifest.lineage.git is not None and manifest.lineage.git.branch == "main"
    assert definition.apis["/predict"].func([1.0, 2.0]) == [8.0, 10.0]  # 2 * x + sum(0, 1, 2, 3)


def test_the_model_writes_back_the_exact_bytes_an_older_release_wrote(tmp_path):
    """Same content, same manifest bytes, same digest: nothing is added, dropped or re-typed on the way."""
    root = shutil.copytree(OLD_BENTO, tmp_path / "old")
    original = (root / "bento.yaml").read_bytes()
    content = {k: v for k, v in json.loads(original).items() if k not in WRITTEN_FIELDS}
    rewritten = write_manifest(root, BentoManifest.model_validate(content))
    assert (root / "bento.yaml").read_bytes() == original
    assert rewritten.digest == json.loads(original)["digest"]


def test_fields_a_newer_release_adds_are_kept_in_the_document_and_its_digest(tmp_path):
    root = shutil.copytree(OLD_BENTO, tmp_path / "newer")
    document = json.loads((root / "bento.yaml").read_text())
    document["gpu_profile"] = {"min_memory_gb": 24}  # a field this release does not know
    document["apis"][0]["streaming_format"] = "sse"
    document["digest"] = manifest_digest(document)
    (root / "bento.yaml").write_text(json.dumps(document, sort_keys=True, indent=2))
    manifest = read_manifest(root)
    assert manifest.document == document  # what a push sends and a pull writes back: the digest still holds
    assert manifest_file_bytes(manifest) == (root / "bento.yaml").read_bytes()
    assert not hasattr(manifest, "gpu_profile") and manifest.apis[0].name == "predict"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: d["apis"][0].update(max_batch_size="eight"), "apis.0.max_batch_size"),
        (lambda d: d["apis"][0].pop("route"), "apis.0.route"),
        (lambda d: d["models"][1].update(files="scale.pkl"), "models.1.files"),
        (lambda d: d.update(kind="dataset"), "kind"),
        (lambda d: d.update(lineage=["not", "an", "object"]), "lineage"),
        (lambda d: d.update(verification={"state": "probably", "replayed": 1}), "verification.state"),
        (lambda d: d["files"][0].update(size="big"), "files.0.size"),
    ],
)
def test_a_field_of_the_wrong_shape_is_refused_naming_it(tmp_path, change, field):
    root = shutil.copytree(OLD_BENTO, tmp_path / "bad")
    document = json.loads((root / "bento.yaml").read_text())
    change(document)
    document["digest"] = manifest_digest(document)
    (root / "bento.yaml").write_text(json.dumps(document))
    with pytest.raises(InvalidManifest, match=f"field '{field}'"):
        read_manifest(root, verify_files=False)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


KEYS = st.text(min_size=1, max_size=12)


@given(
    extra=st.dictionaries(KEYS.filter(lambda k: k not in {*BentoManifest.model_fields, "schema"}), JSON, max_size=4),
    lineage=st.dictionaries(KEYS.filter(lambda k: k not in Lineage.model_fields), JSON, max_size=4),
)
def test_any_unknown_fields_round_trip_through_a_read_unchanged(extra, lineage):
    document = json.loads((OLD_BENTO / "bento.yaml").read_text())
    document = {**document, **extra, "lineage": {**document["lineage"], **lineage}}
    manifest = BentoManifest.from_document(document)
    assert manifest.document is document
    assert manifest.lineage.model_dump(exclude_unset=True, mode="json") == document["lineage"]
