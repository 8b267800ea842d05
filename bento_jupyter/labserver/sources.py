"""Where the sidebar's bentos come from: a registry (URL and token from the panel's settings) or the
local store under ``$BENTO_JUPYTER_HOME``. Both answer in the same shapes; every call blocks."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from bento_jupyter.bento.local_store import Store, StoredItem
from bento_jupyter.bento.manifest import read_manifest
from bento_jupyter.bento.manifest_model import BentoManifest
from bento_jupyter.bento.signing import signer_of
from bento_jupyter.bento.trust import code_executing_files
from bento_jupyter.errors import BentoIntegrityError, BentoNotFoundError, BentoSignatureError
from bento_jupyter.refs import version_or_latest
from bento_jupyter.registry.client.login import resolve_login
from bento_jupyter.registry.client.remote import RegistryClient, move_alias, push
from bento_jupyter.registry.errors import InvalidRequest
from bento_jupyter.registry.records import VersionSummary

NO_REGISTRY = "no registry configured: set registryUrl in Settings > Bento"


def _detail(summary: dict[str, Any], manifest: BentoManifest) -> dict[str, Any]:
    verification = manifest.verification  # replayed samples at build time; None when not verified
    return {
        **summary,
        "lineage": manifest.lineage.model_dump(mode="json", exclude_unset=True),
        "apis": [api.model_dump(mode="json", exclude_unset=True) for api in manifest.apis],
        "verification": verification.model_dump(mode="json", exclude_unset=True) if verification else None,
    }


def _local_signer(root: Path) -> dict[str, Any] | None:
    """The key a local bento's bento.sig names (not verified here: ``verify-signature`` does that)."""
    try:
        signer = signer_of(root)
    except BentoSignatureError as exc:
        return {"key": None, "verified": False, "error": str(exc)}
    return {"key": signer.fingerprint, "verified": False} if signer else None


class RegistrySource:
    """A registry at ``url``; without a ``token``, the one ``bento-jupyter login`` (or the environment)
    configured for that same URL, if any."""

    kind = "registry"

    def __init__(self, url: str, token: str | None) -> None:
        self.url, self.token = resolve_login(url, token)
        self.client = RegistryClient(self.url, self.token)

    def bentos(self) -> list[dict[str, Any]]:
        return [
            {"name": b.name, "latest": b.latest, "versions": b.versions, "aliases": b.aliases}
            for b in self.client.bentos()
        ]

    @staticmethod
    def _summary(v: VersionSummary) -> dict[str, Any]:
        return {
            "name": v.name,
            "version": v.version,
            "aliases": v.aliases,
            "tags": v.tags,
            "created_by": v.created_by,
            "created_at": v.created_at,
            "size_bytes": v.size,
            "digest": v.digest,
            "code_executing_files": v.code_executing_files,
            # {key, verified}: verified against the registry's trusted keys
            "signed_by": v.signed_by.to_json() if v.signed_by else None,
        }

    def versions(self, name: str) -> list[dict[str, Any]]:
        return [self._summary(v) for v in self.client.versions(name)]

    def version(self, name: str, ref: str) -> dict[str, Any]:
        info = self.client.version(name, version_or_latest(ref))
        return _detail(self._summary(info), info.manifest)

    def set_alias(self, name: str, alias: str, version: int) -> dict[str, Any]:
        return move_alias(name, alias, version, self.url, self.token).to_json()

    def alias_history(self, name: str, alias: str) -> list[dict[str, Any]]:
        """The alias's moves, rollbacks and policy changes, newest first."""
        return [event.to_json() for event in reversed(self.client.history(name, alias=alias))]

    def rollback(self, name: str, alias: str, reason: str | None) -> dict[str, Any]:
        return self.client.rollback(name, alias, reason).to_json()

    def delete(self, name: str, ref: str) -> dict[str, Any]:
        number = version_or_latest(ref)
        if number is None:
            raise InvalidRequest("delete a numbered version, not 'latest'")
        self.client.delete_version(name, number)
        return {"deleted": f"{name}:{number}"}

    def push(self, tag: str) -> dict[str, Any]:
        result = push(tag, self.url, self.token)
        return {"tag": result.tag, "version": result.version, "created": result.created}


class LocalSource:
    """The local store: versions numbered by this machine, no aliases or tags."""

    kind = "local"
    url = None

    def __init__(self, kind: str = "bentos") -> None:
        self.store = Store(kind)

    def _summary(self, item: StoredItem) -> dict[str, Any]:
        summary: dict[str, Any] = {"name": item.name, "version": item.version, "aliases": [], "tags": []}
        try:
            manifest = read_manifest(item.path, verify_files=False, name=self.store.manifest_name)
        except BentoIntegrityError as exc:
            return {**summary, "error": str(exc)}
        return {
            **summary,
            "created_by": manifest.lineage.built_by,
            "created_at": manifest.lineage.built_at,
            "size_bytes": manifest.size,
            "digest": manifest.digest,
            "code_executing_files": code_executing_files(manifest),
            "signed_by": _local_signer(item.path),
        }

    def items(self) -> list[dict[str, Any]]:
        """Every version of every name, with its tag: what ``bento-jupyter bentos|models list`` shows."""
        return [{"tag": item.tag, **self._summary(item)} for item in self.store.list()]

    def bentos(self) -> list[dict[str, Any]]:
        numbers: dict[str, list[int]] = defaultdict(list)
        for item in self.store.list():
            numbers[item.name].append(item.version)
        return [{"name": n, "latest": max(v), "versions": len(v), "aliases": {}} for n, v in sorted(numbers.items())]

    def versions(self, name: str) -> list[dict[str, Any]]:
        items = self.store.list(name)
        if not items:
            raise BentoNotFoundError(f"no bento named {name!r} in {self.store.root}")
        return [self._summary(item) for item in items]

    def version(self, name: str, ref: str) -> dict[str, Any]:
        number = version_or_latest(ref)
        item = self.store.resolve(f"{name}:{number or 'latest'}")
        return _detail(self._summary(item), self.store.manifest(item.tag))

    def set_alias(self, name: str, alias: str, version: int) -> dict[str, Any]:
        raise InvalidRequest(f"aliases live in a registry: {NO_REGISTRY}")

    def alias_history(self, name: str, alias: str) -> list[dict[str, Any]]:
        raise InvalidRequest(f"aliases live in a registry: {NO_REGISTRY}")

    def rollback(self, name: str, alias: str, reason: str | None) -> dict[str, Any]:
        raise InvalidRequest(f"aliases live in a registry: {NO_REGISTRY}")

    def delete(self, name: str, ref: str) -> dict[str, Any]:
        number = version_or_latest(ref)
        if number is None:
            raise InvalidRequest("delete a numbered version, not 'latest'")
        return {"deleted": self.store.delete(f"{name}:{number}").tag}

    def push(self, tag: str) -> dict[str, Any]:
        raise InvalidRequest(NO_REGISTRY)


def notebook_in_root(path: str | None, root_dir: str) -> str | None:
    """``path`` (a lineage notebook path) relative to the Jupyter root, or None when it is not a notebook there."""
    if not path:
        return None
    root = Path(root_dir).resolve()
    candidate = (root / path).resolve()  # an absolute path stays itself
    if not candidate.is_file() or not candidate.is_relative_to(root):
        return None
    return candidate.relative_to(root).as_posix()
