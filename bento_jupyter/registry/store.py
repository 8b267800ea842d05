"""The registry's core, free of HTTP: metadata and blobs kept consistent with each other."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bento_jupyter.bento.manifest_model import BentoManifest
from bento_jupyter.registry.db.metadata import MetadataStore
from bento_jupyter.registry.errors import Conflict, InvalidRequest
from bento_jupyter.registry.gc import mark
from bento_jupyter.registry.promotion import Promotions
from bento_jupyter.registry.records import VersionSummary
from bento_jupyter.registry.storage.base import BlobStore
from bento_jupyter.registry.validation import check_sha256
from bento_jupyter.registry.webhooks import WebhookStore

_PROBES = 8  # concurrent existence checks: S3 answers each with one round trip


class RegistryStore:
    """Publishing checks every blob a manifest lists before the version is committed."""

    def __init__(self, metadata: MetadataStore, blobs: BlobStore) -> None:
        self.metadata = metadata
        self.blobs = blobs
        self.promotions = Promotions(metadata)
        self.webhooks = WebhookStore(metadata.engine)
        metadata.observers.append(self.webhooks.enqueue)
        self._probes = ThreadPoolExecutor(_PROBES, thread_name_prefix="blob-probe")

    def close(self) -> None:
        self._probes.shutdown(wait=False)
        self.metadata.engine.dispose()

    def sizes(self, digests: list[str]) -> dict[str, int | None]:
        unique = sorted({check_sha256(d) for d in digests})
        return dict(zip(unique, self._probes.map(self.blobs.size, unique), strict=True))

    def missing(self, digests: list[str]) -> list[str]:
        """The digests among ``digests`` that no stored blob has (what a client must upload)."""
        if not isinstance(digests, list) or len(digests) > 100_000:
            raise InvalidRequest("send {'digests': [sha256, ...]} (at most 100000)")
        sizes = self.sizes(digests)
        mark(self.metadata.engine, [digest for digest, size in sizes.items() if size is not None])  # see gc
        return [digest for digest, size in sizes.items() if size is None]

    def publish(
        self, name: str, manifest: BentoManifest, actor: str, signature: dict[str, Any] | None = None
    ) -> tuple[VersionSummary, bool]:
        """Commit a version of ``manifest`` (checked by ``validation.check_manifest`` for ``name``) whose every file is
        already stored with its listed size."""
        digests = [entry.sha256 for entry in manifest.files]
        mark(self.metadata.engine, digests)  # gc keeps them from now
        sizes = self.sizes(digests)
        missing = sorted(digest for digest, size in sizes.items() if size is None)
        if missing:
            raise Conflict(f"upload these blobs first: {len(missing)} missing", missing=missing)
        for entry in manifest.files:
            if sizes[entry.sha256] != entry.size:
                raise InvalidRequest(
                    f"{entry.path}: the manifest says {entry.size} bytes, blob {entry.sha256} has {sizes[entry.sha256]}"
                )
        return self.metadata.publish(name, manifest, actor, signature)
