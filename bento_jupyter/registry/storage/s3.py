"""Blobs in S3-compatible object storage (AWS S3, MinIO, Ceph, ...), through boto3.

An upload streams to a staging key in parts of ``PART_SIZE`` (memory stays bounded), is hashed on
the way, and only once its sha256 matches is it copied server-side to its final key: a blob key
exists only with verified content, like a rename into place on disk.
"""

from __future__ import annotations

import datetime
import hashlib
import uuid
from collections.abc import Iterator
from typing import Any

from bento_jupyter.registry.errors import DigestMismatch, InvalidRequest, NotFound, RegistryUnavailable
from bento_jupyter.registry.storage.base import CHUNK, STALE_UPLOAD_S, BlobUpload, StoredBlob
from bento_jupyter.registry.validation import check_sha256

PART_SIZE = 8 << 20  # S3 parts are at least 5 MiB, but the last


def _client(endpoint: str | None) -> Any:
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise InvalidRequest("s3:// storage needs boto3: pip install 'bento_jupyter[s3]'") from None
    config = Config(
        s3={"addressing_style": "path"} if endpoint else {},
        retries={"max_attempts": 5, "mode": "standard"},
        max_pool_connections=32,
    )
    return boto3.session.Session().client("s3", endpoint_url=endpoint, config=config)


def _missing(exc: Exception) -> bool:
    response = getattr(exc, "response", None) or {}
    return response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound")


class _S3Upload:
    def __init__(self, store: S3BlobStore, sha256: str) -> None:
        self._store = store
        self._sha256 = sha256
        self._hash = hashlib.sha256()
        self._buffer = bytearray()
        self._staging = f"{store.prefix}uploads/{uuid.uuid4().hex}"
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []

    def write(self, data: bytes) -> None:
        self._hash.update(data)
        self._buffer += data
        while len(self._buffer) >= PART_SIZE:
            self._send_part(bytes(self._buffer[:PART_SIZE]))
            del self._buffer[:PART_SIZE]

    def _send_part(self, body: bytes) -> None:
        s3, bucket = self._store.client, self._store.bucket
        if self._upload_id is None:
            self._upload_id = s3.create_multipart_upload(Bucket=bucket, Key=self._staging)["UploadId"]
        number = len(self._parts) + 1
        etag = s3.upload_part(Bucket=bucket, Key=self._staging, UploadId=self._upload_id, PartNumber=number, Body=body)[
            "ETag"
        ]
        self._parts.append({"ETag": etag, "PartNumber": number})

    def commit(self) -> None:
        s3, bucket, final = self._store.client, self._store.bucket, self._store.key(self._sha256)
        if self._hash.hexdigest() != self._sha256:
            self.abort()
            raise DigestMismatch(f"the upload's sha256 is {self._hash.hexdigest()}, not {self._sha256}")
        if self._upload_id is None:  # small blob: verified in memory, one atomic PUT to its final key
            s3.put_object(Bucket=bucket, Key=final, Body=bytes(self._buffer))
            return
        try:
            if self._buffer:
                self._send_part(bytes(self._buffer))
            s3.complete_multipart_upload(
                Bucket=bucket, Key=self._staging, UploadId=self._upload_id, MultipartUpload={"Parts": self._parts}
            )
            self._upload_id = None
            s3.copy({"Bucket": bucket, "Key": self._staging}, bucket, final)  # managed: multipart copy over 5 GiB
        finally:
            self.abort()

    def abort(self) -> None:
        s3, bucket = self._store.client, self._store.bucket
        self._buffer.clear()
        if self._upload_id is not None:
            s3.abort_multipart_upload(Bucket=bucket, Key=self._staging, UploadId=self._upload_id)
            self._upload_id = None
        elif self._parts:
            s3.delete_object(Bucket=bucket, Key=self._staging)
            self._parts.clear()


class S3BlobStore:
    """Blobs as objects ``PREFIX/sha256/ab/abcd...`` in ``bucket``; staging under ``PREFIX/uploads/``."""

    def __init__(self, bucket: str, prefix: str = "", endpoint: str | None = None, client: Any = None) -> None:
        if not bucket:
            raise InvalidRequest("s3:// storage needs a bucket: s3://BUCKET/PREFIX")
        self.bucket = bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self.endpoint = endpoint
        self.client = client or _client(endpoint)
        try:
            self.client.head_bucket(Bucket=bucket)
        except Exception as exc:
            where = f" at {endpoint}" if endpoint else ""
            raise RegistryUnavailable(f"cannot use bucket {bucket!r}{where}: {exc}") from None
        self.sweep()

    def __repr__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def key(self, sha256: str) -> str:
        check_sha256(sha256)
        return f"{self.prefix}sha256/{sha256[:2]}/{sha256}"

    def sweep(self) -> None:
        """Abort multipart uploads a killed server left behind."""
        cutoff = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=STALE_UPLOAD_S)
        listing = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=f"{self.prefix}uploads/")
        for upload in listing.get("Uploads", []):
            if upload["Initiated"] < cutoff:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"])

    def size(self, sha256: str) -> int | None:
        try:
            return int(self.client.head_object(Bucket=self.bucket, Key=self.key(sha256))["ContentLength"])
        except Exception as exc:
            if _missing(exc):
                return None
            raise

    def begin(self, sha256: str) -> BlobUpload:
        check_sha256(sha256)
        return _S3Upload(self, sha256)

    def open(self, sha256: str) -> Iterator[bytes]:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self.key(sha256))["Body"]
        except Exception as exc:
            if _missing(exc):
                raise NotFound(f"no blob {sha256}") from None
            raise

        def chunks() -> Iterator[bytes]:
            with body:
                yield from body.iter_chunks(CHUNK)

        return chunks()

    def list(self) -> Iterator[StoredBlob]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=f"{self.prefix}sha256/"
        )
        for page in pages:
            for item in page.get("Contents", []):
                name = item["Key"].rsplit("/", 1)[-1]
                if len(name) == 64:
                    yield StoredBlob(name, int(item["Size"]), item["LastModified"])

    def delete(self, sha256: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.key(sha256))
