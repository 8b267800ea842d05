"""The OCI Distribution API (``/v2/``) over ``requests``: blobs and manifests, with basic and bearer auth.

Auth follows the registry's challenge: a ``401`` with ``WWW-Authenticate: Basic`` is answered with the
credentials; one with ``Bearer realm=...,service=...,scope=...`` gets a token from the realm (with the
credentials, if any: anonymous pulls work too) and retries once.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urljoin

import requests

from bento_jupyter.net_errors import connection_reason
from bento_jupyter.oci.credentials import Credentials, docker_credentials
from bento_jupyter.oci.reference import OCIError, OCIReference

CHUNK = 1 << 20
MAX_MANIFEST_BYTES = 4 << 20  # the distribution spec's suggested limit
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')
_LOOPBACK = ("localhost", "127.", "[::1]")


class DistributionClient:
    """One repository on one registry; ``plain_http`` defaults to True only for loopback hosts."""

    def __init__(
        self,
        ref: OCIReference,
        credentials: Credentials | None = None,
        plain_http: bool | None = None,
        timeout: float = 600,
    ) -> None:
        self.ref = ref
        if plain_http is None:
            plain_http = ref.host.startswith(_LOOPBACK)
        self.base = f"{'http' if plain_http else 'https'}://{ref.host}"
        self.credentials = credentials if credentials is not None else docker_credentials(ref.host)
        self.timeout = (10, timeout)
        self.session = requests.Session()

    # -- transport and auth ------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return f"{self.base}/v2/{self.ref.repository}/{path}"

    def _send(self, method: str, url: str, retry_auth: bool = True, **kwargs: Any) -> requests.Response:
        try:
            response = self.session.request(method, url, timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise OCIError(f"cannot reach the OCI registry {self.ref.host}: {connection_reason(exc)}") from None
        if response.status_code == 401 and retry_auth:
            self._authenticate(response)
            return self._send(method, url, retry_auth=False, **kwargs)
        return response

    def _authenticate(self, challenge: requests.Response) -> None:
        header = challenge.headers.get("WWW-Authenticate", "")
        scheme = header.split(" ", 1)[0].lower()
        if scheme == "basic":
            if self.credentials is None:
                raise OCIError(f"{self.ref.host} needs a login: docker login {self.ref.host} (or pass --username)")
            self.session.auth = (self.credentials.username, self.credentials.password)
            return
        if scheme != "bearer":
            raise OCIError(f"{self.ref.host} asks for unsupported authentication {header!r}")
        params = dict(_CHALLENGE.findall(header))
        realm = params.pop("realm", None)
        if not realm:
            raise OCIError(f"{self.ref.host}: bearer challenge without a realm: {header!r}")
        auth = (self.credentials.username, self.credentials.password) if self.credentials else None
        try:
            answer = requests.get(realm, params=params, auth=auth, timeout=self.timeout)
        except requests.RequestException as exc:
            raise OCIError(f"cannot reach the token service {realm}: {connection_reason(exc)}") from None
        if answer.status_code != 200:
            raise OCIError(f"the token service {realm} refused ({answer.status_code}): check your login")
        body = answer.json()
        token = body.get("token") or body.get("access_token")
        if not token:
            raise OCIError(f"the token service {realm} answered no token")
        self.session.auth = None
        self.session.headers["Authorization"] = f"Bearer {token}"

    def _check(self, response: requests.Response, what: str, *expected: int) -> requests.Response:
        if response.status_code in expected:
            return response
        try:
            errors = response.json().get("errors") or []
            detail = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors)
        except (ValueError, AttributeError):
            detail = response.text[:200]
        if response.status_code == 401:
            detail += f" (log in with docker login {self.ref.host}, or pass --username)"
        raise OCIError(f"{what} on {self.ref.host}/{self.ref.repository}: {response.status_code} {detail}".rstrip())

    # -- blobs ---------------------------------------------------------------------------------------

    def has_blob(self, digest: str) -> bool:
        response = self._send("HEAD", self._url(f"blobs/{digest}"))
        return self._check(response, f"checking blob {digest}", 200, 404).status_code == 200

    def upload_blob(self, digest: str, body: bytes | Path) -> None:
        """A monolithic upload (POST then PUT); the registry verifies the digest before it keeps the blob."""
        started = self._check(self._send("POST", self._url("blobs/uploads/")), "starting an upload", 202)
        location = urljoin(self.base + "/", started.headers["Location"])
        separator = "&" if "?" in location else "?"
        headers = {"Content-Type": "application/octet-stream"}
        if isinstance(body, Path):
            with body.open("rb") as handle:
                self._put_blob(f"{location}{separator}digest={digest}", handle, headers, digest)
        else:
            self._put_blob(f"{location}{separator}digest={digest}", body, headers, digest)

    def _put_blob(self, url: str, data: bytes | BinaryIO, headers: dict[str, str], digest: str) -> None:
        response = self._send("PUT", url, retry_auth=False, data=data, headers=headers)
        self._check(response, f"uploading blob {digest}", 201)

    def blob_chunks(self, digest: str) -> Iterator[bytes]:
        """The blob's bytes as the registry sends them: the caller verifies the digest."""
        response = self._check(self._send("GET", self._url(f"blobs/{digest}"), stream=True), f"fetching {digest}", 200)
        with response:
            yield from response.iter_content(CHUNK)

    def blob(self, digest: str, limit: int) -> bytes:
        """A small blob, whole, verified against its digest."""
        data = bytearray()
        for chunk in self.blob_chunks(digest):
            data += chunk
            if len(data) > limit:
                raise OCIError(f"blob {digest} is over {limit} bytes: refused")
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise OCIError(f"blob {digest} from {self.ref.host} does not match its digest: refused")
        return bytes(data)

    # -- manifests -----------------------------------------------------------------------------------

    def put_manifest(self, reference: str, body: bytes, media_type: str) -> str:
        """Store a manifest under a tag or digest; return its digest (checked against the registry's)."""
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        response = self._send(
            "PUT", self._url(f"manifests/{reference}"), data=body, headers={"Content-Type": media_type}
        )
        self._check(response, f"storing the manifest {reference}", 201)
        answered = response.headers.get("Docker-Content-Digest")
        if answered and answered != digest:
            raise OCIError(f"{self.ref.host} stored the manifest as {answered}, not {digest}")
        return digest

    def manifest(self, reference: str, media_type: str) -> tuple[bytes, str]:
        """The manifest's bytes and digest; a manifest fetched by digest must hash to it."""
        response = self._send("GET", self._url(f"manifests/{reference}"), headers={"Accept": media_type})
        self._check(response, f"fetching the manifest {reference}", 200)
        body = response.content
        if len(body) > MAX_MANIFEST_BYTES:
            raise OCIError(f"the manifest {reference} is over {MAX_MANIFEST_BYTES} bytes: refused")
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        if reference.startswith("sha256:") and digest != reference:
            raise OCIError(f"the manifest from {self.ref.host} hashes to {digest}, not {reference}: refused")
        return body, digest
