"""``oci://HOST[:PORT]/REPOSITORY[:TAG][@sha256:DIGEST]``: where an artifact lives in an OCI registry."""

from __future__ import annotations

import re
from dataclasses import dataclass

from bento_jupyter.errors import BentoJupyterError

# The OCI distribution spec's grammar for repository names and tags.
_REPOSITORY = re.compile(r"^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$")
_TAG = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")
_HOST = re.compile(r"^[A-Za-z0-9.-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$")
SCHEME = "oci://"


class OCIError(BentoJupyterError):
    """An OCI reference, registry answer or artifact we cannot use; the message says which and why."""


@dataclass(frozen=True)
class OCIReference:
    """One artifact: a registry host, a repository, and a tag and/or a manifest digest."""

    host: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, text: str) -> OCIReference:
        """Parse ``oci://host[:port]/repo[:tag][@sha256:...]`` (OCIError naming the bad part)."""
        if not text.startswith(SCHEME):
            raise OCIError(f"invalid OCI reference {text!r}: write oci://HOST[:PORT]/REPOSITORY[:TAG][@sha256:...]")
        rest = text[len(SCHEME) :]
        host, slash, path = rest.partition("/")
        if not slash or not path or not _HOST.fullmatch(host):
            raise OCIError(f"invalid OCI reference {text!r}: it needs a registry host and a repository")
        path, at, digest = path.partition("@")
        if at and not _DIGEST.fullmatch(digest):
            raise OCIError(f"invalid digest {digest!r} in {text!r}: expected sha256: and 64 lowercase hex digits")
        repository, tag = path, None
        last = path.rsplit("/", 1)[-1]
        if ":" in last:
            repository, _, tag = path.rpartition(":")
            if not _TAG.fullmatch(tag):
                raise OCIError(f"invalid tag {tag!r} in {text!r}: letters, digits, '.', '_', '-' (max 128)")
        if not _REPOSITORY.fullmatch(repository):
            raise OCIError(f"invalid repository {repository!r} in {text!r}: lowercase path components")
        return cls(host, repository, tag, digest or None)

    @property
    def reference(self) -> str:
        """What ``/v2/<name>/manifests/<reference>`` takes: the digest when known, else the tag."""
        if self.digest:
            return self.digest
        if self.tag:
            return self.tag
        raise OCIError(f"{self} names no tag or digest")

    def with_digest(self, digest: str) -> OCIReference:
        return OCIReference(self.host, self.repository, self.tag, digest)

    def __str__(self) -> str:
        return (
            SCHEME
            + self.host
            + "/"
            + self.repository
            + (f":{self.tag}" if self.tag else "")
            + (f"@{self.digest}" if self.digest else "")
        )
