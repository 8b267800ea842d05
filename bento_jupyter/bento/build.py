"""Build a bento from a served service: capture its code and objects, write files and manifest."""

from __future__ import annotations

import json
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bento_jupyter._version import __version__
from bento_jupyter.bento.dockerfile import ENTRYPOINT, render_dockerfile
from bento_jupyter.bento.local_store import Store, StoredItem
from bento_jupyter.bento.manifest import write_manifest
from bento_jupyter.bento.manifest_model import ApiEntry, BentoManifest, Lineage, Verification
from bento_jupyter.bento.manifest_paths import MODEL_MANIFEST_NAME
from bento_jupyter.bento.trust import remember_built
from bento_jupyter.capture.code_slice import CodeSlice
from bento_jupyter.capture.objects import save_objects
from bento_jupyter.capture.requirements import infer_requirements, lock_requirements
from bento_jupyter.service.definition import ServiceDefinition
from bento_jupyter.service.schema import openapi_document, service_schema
from bento_jupyter.service.settings import ServiceSettings

SOURCE_MODULE = "src/service.py"
LOCK_FILE = "env/requirements.lock"
SAMPLES_FILE = "verify/samples.json"

Check = Callable[[Path], Verification]  # verifies a written bento; returns its manifest's "verification"


def _api_entries(definition: ServiceDefinition) -> list[ApiEntry]:
    return [
        ApiEntry(
            name=method.name,
            route=method.route,
            function=method.func.__name__,
            batchable=method.config.batchable,
            max_batch_size=method.config.max_batch_size,
            max_latency_ms=method.config.max_latency_ms,
            batch_dim=method.config.batch_dim,
            device=method.config.device,
            verify=method.config.verify,
            tolerance=method.config.tolerance,
            stream=method.is_stream,
            task=method.config.task,
            max_concurrency=method.config.max_concurrency,
            max_queue_size=method.config.max_queue_size,
            timeout=method.config.timeout,
        )
        for method in definition.apis.values()
    ]


def _requirement_set(code: CodeSlice, extra: list[str]) -> list[str]:
    requirements = infer_requirements(code.modules | {"numpy"}, extra)
    ours = f"bento_jupyter=={__version__}"
    return requirements if any(r.startswith("bento") for r in requirements) else [*requirements, ours]


def write_bento(
    root: Path,
    definition: ServiceDefinition,
    code: CodeSlice,
    lineage: dict[str, Any],
    extra_requirements: list[str],
    samples: dict[str, Any] | None = None,
    check: Check | None = None,
    settings: ServiceSettings = ServiceSettings(),  # noqa: B008 (frozen)
) -> BentoManifest:
    """Write a complete bento into the empty directory ``root``, with the ``settings`` it was served with;
    return its manifest.

    ``samples`` (requests and the kernel's answers, per API) are stored in ``verify/``; ``check`` then
    verifies the written bento (raising when it answers differently) and its result joins the manifest.
    """
    source = code.render(
        f"Service {definition.name!r}, captured by bento_jupyter {__version__} from a notebook.\n\n"
        "Generated from the cells listed in ../bento.yaml (lineage): edit the notebook, not this file.\n"
    )
    (root / "src").mkdir()
    (root / SOURCE_MODULE).write_text(source)
    models = save_objects(code.stored_objects(), root / "models", code.references(), code.origin_cells())
    requirements = _requirement_set(code, extra_requirements)
    python = ".".join(platform.python_version_tuple()[:2])
    (root / "env").mkdir()
    (root / "env" / "requirements.txt").write_text("\n".join(requirements) + "\n")
    (root / LOCK_FILE).write_text(
        "# Every distribution the requirements need, pinned to the versions the kernel ran with.\n"
        + "\n".join(lock_requirements(requirements))
        + "\n"
    )
    (root / "env" / "Dockerfile").write_text(render_dockerfile(definition.name, python))
    (root / "env" / "entrypoint.sh").write_text(ENTRYPOINT)
    if samples is not None:
        (root / SAMPLES_FILE).parent.mkdir()
        (root / SAMPLES_FILE).write_text(json.dumps(samples, indent=1, sort_keys=True))
    manifest = write_manifest(
        root,
        BentoManifest(
            kind="bento",
            name=definition.name,
            created_with=f"bento_jupyter {__version__}",
            python_version=platform.python_version(),
            requirements=requirements,
            requirements_lock=LOCK_FILE,
            source=SOURCE_MODULE,
            apis=_api_entries(definition),
            settings=settings,
            models=models,
            schema=service_schema(definition),
            openapi=openapi_document(definition, __version__),
            lineage=Lineage.model_validate(lineage),
        ),
    )
    if check is not None:
        manifest = write_manifest(root, manifest.replace(verification=check(root)))
    remember_built(manifest.digest)  # the kernel that built a bento may load it without asking
    return manifest


def build_bento(
    store: Store,
    definition: ServiceDefinition,
    code: CodeSlice,
    lineage: dict[str, Any],
    extra_requirements: list[str] | None = None,
    samples: dict[str, Any] | None = None,
    check: Check | None = None,
    settings: ServiceSettings | None = None,
) -> StoredItem:
    """Write a new version of ``definition`` into ``store`` atomically (nothing when ``check`` raises)."""
    recorded = settings or ServiceSettings()
    return store.add(
        definition.name,
        lambda root: write_bento(root, definition, code, lineage, extra_requirements or [], samples, check, recorded),
    )


def save_model(store: Store, name: str, code: CodeSlice, lineage: dict[str, Any]) -> StoredItem:
    """Write one captured object (and the notebook classes it needs) as a new model version."""

    def fill(root: Path) -> None:
        (root / "src").mkdir()
        (root / "src" / "model_code.py").write_text(code.render(f"Code model {name!r} needs to load."))
        entries = save_objects(code.stored_objects(), root / "models", code.references(), code.origin_cells())
        manifest = BentoManifest(kind="model", name=name, models=entries, lineage=Lineage.model_validate(lineage))
        write_manifest(root, manifest, MODEL_MANIFEST_NAME)

    return store.add(name, fill)
