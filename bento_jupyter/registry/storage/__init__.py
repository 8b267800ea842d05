"""Blob storage chosen by URI scheme, as MLflow chooses artifact stores: ``file://`` (local) or ``s3://``."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from bento_jupyter.registry.errors import InvalidRequest
from bento_jupyter.registry.storage.base import BlobStore
from bento_jupyter.registry.storage.local import LocalBlobStore


def open_blob_store(uri: str, s3_endpoint: str | None = None) -> BlobStore:
    """A blob store from ``file:///path`` (or a plain path) or ``s3://bucket/prefix``."""
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        path = Path(parsed.path if parsed.scheme else uri).expanduser()
        if parsed.netloc not in ("", "localhost"):
            raise InvalidRequest(f"unsupported storage {uri!r}: file:// URIs name a local path (file:///srv/blobs)")
        return LocalBlobStore(path.resolve())
    if parsed.scheme == "s3":
        from bento_jupyter.registry.storage.s3 import S3BlobStore

        return S3BlobStore(parsed.netloc, parsed.path.strip("/"), endpoint=s3_endpoint)
    raise InvalidRequest(f"unsupported storage {uri!r}: use file:///PATH or s3://BUCKET/PREFIX")
