"""What digests, JSON bodies and manifests (their file paths and sizes) may look like, checked before anything else.

Names, aliases, tags and versions: :mod:`bento_jupyter.refs`."""

from __future__ import annotations

import re
from typing import Any

from bento_jupyter.bento.manifest import check_references, manifest_digest
from bento_jupyter.bento.manifest_model import BentoManifest
from bento_jupyter.bento.manifest_paths import SHA256_PATTERN, check_file_list
from bento_jupyter.errors import BentoIntegrityError
from bento_jupyter.registry.errors import DigestMismatch, InvalidRequest

DIGEST_PATTERN = re.compile(r"sha256:[0-9a-f]{64}")
MAX_JSON_DEPTH = 64  # a manifest nests a few levels; 1,000 levels would exhaust the parser's stack
RECORD_ID_PATTERN = re.compile(r"[0-9a-f]{12}")  # token and webhook ids: secrets.token_hex(6)


def check_sha256(value: Any) -> str:
    if not isinstance(value, str) or not SHA256_PATTERN.fullmatch(value):
        raise InvalidRequest(f"invalid sha256 {value!r}: expected 64 lowercase hex digits")
    return value


def check_record_id(value: str, what: str) -> str:
    """A token's or webhook's id, as the registry makes them: 12 lowercase hex digits."""
    if not RECORD_ID_PATTERN.fullmatch(value):
        raise InvalidRequest(f"invalid {what} id {value[:80]!r}: 12 lowercase hex digits")
    return value


def check_json_depth(value: Any, limit: int = MAX_JSON_DEPTH) -> Any:
    """Refuse JSON nested deeper than ``limit`` levels (walked without recursion); returns ``value``."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                raise InvalidRequest(f"the JSON body is nested more than {limit} levels deep")
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return value


def check_manifest(document: Any, name: Any, model: type[BentoManifest] = BentoManifest) -> BentoManifest:
    """A bento manifest whose name, digest, fields and file list hold together: its typed view as ``model``, the
    document kept as sent (the digest covers it). Raises :class:`InvalidRequest` (400) or :class:`DigestMismatch`
    (422): the digest is checked before the fields, so a manifest that does not hash to its digest is a 422."""
    if not isinstance(document, dict):
        raise InvalidRequest("the manifest must be a JSON object")
    check_json_depth(document)
    digest = document.get("digest")
    if not isinstance(digest, str) or not DIGEST_PATTERN.fullmatch(digest):
        raise InvalidRequest(f"invalid manifest digest {digest!r}")
    try:
        computed = manifest_digest(document)
    except UnicodeEncodeError:
        raise InvalidRequest("the manifest holds a lone surrogate escape: not Unicode text") from None
    if computed != digest:
        raise DigestMismatch(f"the manifest's digest {digest} does not match its content")
    if document.get("name") != name:
        raise InvalidRequest(f"the manifest names {document.get('name')!r}, not {name!r}")
    try:
        check_file_list(document.get("files"))
        manifest = model.from_document(document)
        check_references(manifest)
    except BentoIntegrityError as exc:  # InvalidManifest included: a field of the wrong shape, a path refused
        raise InvalidRequest(str(exc)) from None
    return manifest
