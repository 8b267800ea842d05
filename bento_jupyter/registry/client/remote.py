"""Talk to a registry over HTTP: push local bentos, pull versions into the local store, move aliases.

``push`` and ``pull`` are what the CLI and the ``%bento`` magics call; both take a
``progress(done_bytes, total_bytes)`` callback for a progress bar.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import requests
from pydantic import ValidationError
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from bento_jupyter.bento.local_store import Store, StoredItem
from bento_jupyter.bento.manifest import manifest_file_bytes, read_manifest
from bento_jupyter.bento.manifest_paths import MANIFEST_NAME, SIGNATURE_NAME
from bento_jupyter.bento.signing import attach_signature
from bento_jupyter.bento.trust import TrustPolicy, check_trust
from bento_jupyter.errors import BentoIntegrityError
from bento_jupyter.net_errors import connection_reason
from bento_jupyter.refs import Reference, check_name
from bento_jupyter.registry.client.cache import BlobCache
from bento_jupyter.registry.client.login import resolve_login
from bento_jupyter.registry.errors import (
    ERRORS_BY_CODE,
    InvalidRequest,
    RegistryError,
    RegistryIntegrityError,
    RegistryUnavailable,
)
from bento_jupyter.registry.records import (
    AliasList,
    AliasMove,
    AliasPolicy,
    AliasTarget,
    BentoList,
    BentoSummary,
    Comparison,
    Deletion,
    History,
    HistoryEntry,
    MissingBlobs,
    Published,
    Record,
    RecordedVerification,
    VersionDetail,
    VersionList,
    VersionSummary,
)
from bento_jupyter.registry.validation import check_manifest

R = TypeVar("R", bound=Record)

Progress = Callable[[int, int], None]
CHUNK = 1 << 20
API = "/api/v1"
# Idempotent requests are retried when the connection fails or the registry is briefly unavailable (a replica
# restarting behind a load balancer): reads, and blob PUTs, which are content-addressed. Publishes, alias moves
# and deletes are not: after a lost answer, compare-and-set would turn a repeat that succeeded into an error.
_READS = Retry(
    total=3,
    backoff_factor=0.2,
    status_forcelist=(502, 503, 504),
    raise_on_status=False,
    allowed_methods=frozenset({"GET", "HEAD"}),
)
_BLOB_WRITES = _READS.new(allowed_methods=frozenset({"GET", "HEAD", "PUT"}))


class _FileBody:
    """A file as a request body: streamed in chunks, with a length (so Content-Length is sent)."""

    def __init__(self, path: Path, on_bytes: Callable[[int], None]) -> None:
        self._file = path.open("rb")
        self._size = os.fstat(self._file.fileno()).st_size
        self._on_bytes = on_bytes

    def __len__(self) -> int:
        return self._size

    def read(self, size: int = -1) -> bytes:
        data = self._file.read(max(size, CHUNK))
        if data:
            self._on_bytes(len(data))
        return data

    def tell(self) -> int:
        return self._file.tell()

    def seek(self, offset: int) -> None:
        """Rewind for a retried upload; the progress goes back with it."""
        self._on_bytes(offset - self._file.tell())
        self._file.seek(offset)

    def close(self) -> None:
        self._file.close()

    def __iter__(self) -> Iterator[bytes]:
        while data := self.read(CHUNK):
            yield data


class RegistryClient:
    """One registry at ``url``, authenticated by a bearer ``token`` (None for an ``--open`` registry)."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 600) -> None:
        self.url = url.rstrip("/")
        self.timeout = (10, timeout)
        self.session = requests.Session()
        self.session.mount(self.url, HTTPAdapter(max_retries=_READS))
        self.session.mount(f"{self.url}{API}/blobs/", HTTPAdapter(max_retries=_BLOB_WRITES))  # the longest prefix wins
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Send a request; an error answer raises the registry's own exception."""
        try:
            response = self.session.request(method, self.url + API + path, timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise RegistryUnavailable(f"cannot reach the registry at {self.url}: {connection_reason(exc)}") from None
        if response.status_code >= 400:
            raise self._error(response)
        return response

    def _error(self, response: requests.Response) -> RegistryError:
        try:
            body = response.json()
            message, code = body.pop("error"), body.pop("code")
        except (ValueError, KeyError, AttributeError):
            return RegistryUnavailable(f"{self.url} answered {response.status_code}: {response.text[:200]}")
        error = ERRORS_BY_CODE.get(code, RegistryError)(f"{message} ({response.status_code})", **body)
        return error

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, path, **kwargs).json()

    def record(self, kind: type[R], method: str, path: str, **kwargs: Any) -> R:
        """The answer as a typed record; one that does not fit its schema is :class:`RegistryIntegrityError`."""
        answer = self.json(method, path, **kwargs)
        try:
            return kind.model_validate(answer)
        except (ValidationError, BentoIntegrityError) as exc:
            reason = exc.errors(include_url=False)[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
            raise RegistryIntegrityError(
                f"{self.url} answered {method} {path} with a {kind.__name__} that does not fit: {reason}"
            ) from None

    # -- operations -------------------------------------------------------------------------------

    def missing(self, digests: list[str]) -> list[str]:
        return self.record(MissingBlobs, "POST", "/blobs/missing", json={"digests": digests}).missing

    def upload_blob(self, sha256: str, path: Path, on_bytes: Callable[[int], None]) -> None:
        body = _FileBody(path, on_bytes)
        try:
            self.request("PUT", f"/blobs/{sha256}", data=body, headers={"Content-Type": "application/octet-stream"})
        finally:
            body.close()

    def download_blob(self, sha256: str) -> Iterator[bytes]:
        response = self.request("GET", f"/blobs/{sha256}", stream=True)
        with response:
            yield from response.iter_content(CHUNK)

    def publish(self, name: str, manifest: dict[str, Any]) -> Published:
        """Publish a manifest document (plus ``signature``, the bento.sig bundle, when signed)."""
        return self.record(Published, "POST", f"/bentos/{name}/versions", json=manifest)

    def bentos(self) -> list[BentoSummary]:
        return self.record(BentoList, "GET", "/bentos").bentos

    def delete_version(self, name: str, number: int) -> Deletion:
        return self.record(Deletion, "DELETE", f"/bentos/{check_name(name)}/versions/{number}")

    def version(self, name: str, number: int | None = None) -> VersionDetail:
        return self.record(VersionDetail, "GET", f"/bentos/{check_name(name)}/versions/{number or 'latest'}")

    def versions(self, name: str) -> list[VersionSummary]:
        return self.record(VersionList, "GET", f"/bentos/{check_name(name)}/versions").versions

    def alias(self, name: str, alias: str) -> int:
        return self.record(AliasTarget, "GET", f"/bentos/{check_name(name)}/aliases/{alias}").version

    def aliases(self, name: str) -> dict[str, int]:
        return self.record(AliasList, "GET", f"/bentos/{check_name(name)}/aliases").aliases

    def move_alias(
        self,
        name: str,
        alias: str,
        version: int,
        expected: int | None,
        reason: str | None = None,
        force: bool = False,
    ) -> AliasMove:
        body = {"version": version, "expected": expected, "reason": reason, "force": force}
        return self.record(AliasMove, "PUT", f"/bentos/{check_name(name)}/aliases/{alias}", json=body)

    def rollback(self, name: str, alias: str, reason: str | None = None, expected: int | None = None) -> AliasMove:
        """Move ``name@alias`` back to its previous target; PromotionRefused/Conflict say why not."""
        body = {"reason": reason, "expected": expected}
        return self.record(AliasMove, "POST", f"/bentos/{check_name(name)}/aliases/{alias}/rollback", json=body)

    def policy(self, name: str, alias: str) -> AliasPolicy:
        return self.record(AliasPolicy, "GET", f"/bentos/{check_name(name)}/aliases/{alias}/policy")

    def set_policy(self, name: str, alias: str, requires: list[str]) -> AliasPolicy:
        path = f"/bentos/{check_name(name)}/aliases/{alias}/policy"
        return self.record(AliasPolicy, "PUT", path, json={"requires": requires})

    def record_verification(self, name: str, version: int, passed: bool, **report: Any) -> RecordedVerification:
        """Record that replaying ``name:version``'s samples passed (or not); ``report`` is kept as sent."""
        body = {**report, "passed": passed}
        path = f"/bentos/{check_name(name)}/versions/{version}/verifications"
        return self.record(RecordedVerification, "POST", path, json=body)

    def compare(self, name: str, old: int, new: int) -> Comparison:
        return self.record(Comparison, "GET", f"/bentos/{check_name(name)}/compare", params={"from": old, "to": new})

    def tag(self, name: str, version: int, tag: str, present: bool = True) -> VersionSummary:
        method = "PUT" if present else "DELETE"
        return self.record(VersionSummary, method, f"/bentos/{check_name(name)}/versions/{version}/tags/{tag}")

    def history(self, name: str, alias: str | None = None) -> list[HistoryEntry]:
        params = {"alias": alias} if alias else None
        return self.record(History, "GET", f"/bentos/{check_name(name)}/history", params=params).history

    def search(self, **filters: str) -> list[VersionSummary]:
        return self.record(VersionList, "GET", "/search", params={k: v for k, v in filters.items() if v}).versions


def connect(url: str | None = None, token: str | None = None) -> RegistryClient:
    """A client for ``url``/``token``, or the registry saved by ``bento-jupyter login``."""
    return RegistryClient(*resolve_login(url, token))


class _Meter:
    def __init__(self, total: int, progress: Progress | None) -> None:
        self.done, self.total, self.progress = 0, total, progress
        self(0)

    def __call__(self, count: int) -> None:
        self.done += count
        if self.progress is not None:
            self.progress(self.done, self.total)


@dataclass(frozen=True)
class PushResult:
    name: str
    version: int
    digest: str
    created: bool  # False: the registry already had this content, as ``version``
    uploaded_blobs: int
    uploaded_bytes: int

    @property
    def tag(self) -> str:
        return f"{self.name}:{self.version}"


@dataclass(frozen=True)
class PullResult:
    item: StoredItem  # the version in the local store (its local number may differ from the registry's)
    version: int  # the registry's number
    digest: str
    downloaded_bytes: int
    reused: bool  # True: the local store already held this content


def push(
    tag: str,
    url: str | None = None,
    token: str | None = None,
    progress: Progress | None = None,
    store: Store | None = None,
) -> PushResult:
    """Publish local bento ``NAME[:VERSION]``: upload only the blobs the registry lacks, then the manifest."""
    item = (store or Store("bentos")).resolve(tag)
    manifest = read_manifest(item.path)  # re-hashes every file: a tampered bento is refused here
    if manifest.name != item.name:
        raise InvalidRequest(f"{item.tag}: its manifest names {manifest.name!r}; rebuild it as {item.name!r}")
    client = connect(url, token)
    by_digest = {entry.sha256: entry for entry in manifest.files}
    missing = client.missing(sorted(by_digest))
    meter = _Meter(sum(by_digest[d].size for d in missing), progress)
    for digest in missing:
        client.upload_blob(digest, item.path / by_digest[digest].path, meter)
    signature = item.path / SIGNATURE_NAME
    body = {**manifest.document, **({"signature": json.loads(signature.read_text())} if signature.is_file() else {})}
    published = client.publish(item.name, body)
    return PushResult(item.name, published.version, published.digest, published.created, len(missing), meter.done)


def pull(
    ref: str,
    url: str | None = None,
    token: str | None = None,
    progress: Progress | None = None,
    store: Store | None = None,
    cache: BlobCache | None = None,
    trust: TrustPolicy | None = None,
) -> PullResult:
    """Fetch ``NAME``, ``NAME:N`` or ``NAME@ALIAS`` into the local store, verifying every digest.

    A version whose files execute code on load is refused (:class:`UntrustedCodeError`, before any
    download) unless ``trust`` vouches for it: ``--trust-code``, or a signature by a trusted key.
    """
    trust = trust or TrustPolicy()
    remote = Reference.parse(ref)
    store = store or Store("bentos")
    client = connect(url, token)
    number = client.alias(remote.name, remote.alias) if remote.alias else remote.version
    info = client.version(remote.name, number)
    try:
        manifest = check_manifest(info.manifest.document, remote.name)
    except InvalidRequest as exc:
        raise RegistryIntegrityError(f"{remote} from {client.url}: {exc.message}") from None
    if manifest.digest != info.digest:
        raise RegistryIntegrityError(f"{remote} from {client.url}: the manifest is not the version's digest")
    if trust.trusted_keys is None:  # no signature to look at: decide before downloading anything
        check_trust(Path(remote.name), manifest, trust)
    existing = store.with_digest(remote.name, info.digest)
    if existing is not None:
        if info.signature:
            attach_signature(existing.path, json.dumps(info.signature).encode())
        if progress is not None:
            progress(0, 0)
        return PullResult(existing, info.version, info.digest, 0, True)
    cache = cache or BlobCache()
    sizes = {entry.sha256: entry.size for entry in manifest.files}
    needed = {digest: size for digest, size in sizes.items() if not cache.has(digest, size)}
    meter = _Meter(sum(needed.values()), progress)
    for digest in needed:
        cache.put(digest, client.download_blob(digest), meter, client.url)

    def fill(root: Path) -> None:
        for entry in manifest.files:
            cache.copy_to(entry.sha256, root / entry.path)
        (root / MANIFEST_NAME).write_bytes(manifest_file_bytes(manifest))
        if info.signature:
            (root / SIGNATURE_NAME).write_text(json.dumps(info.signature))
        check_trust(root, read_manifest(root), trust)

    item = store.add(remote.name, fill)
    return PullResult(item, info.version, info.digest, meter.done, False)


def move_alias(
    name: str,
    alias: str,
    version: int,
    url: str | None = None,
    token: str | None = None,
    expected: int | str | None = "current",
    reason: str | None = None,
    force: bool = False,
) -> AliasMove:
    """Point ``name@alias`` at ``version``; compare-and-set against ``expected`` (default: what it is now).

    Raises PromotionRefused (code ``promotion_refused``, its message lists the breaking changes) when the
    alias's policy refuses; ``force`` overrides with an admin token and is recorded in the history.
    """
    client = connect(url, token)
    if expected == "current":
        expected = client.aliases(name).get(alias)
    return client.move_alias(name, alias, version, expected if isinstance(expected, int) else None, reason, force)


def history(name: str, url: str | None = None, token: str | None = None) -> list[HistoryEntry]:
    return connect(url, token).history(name)
