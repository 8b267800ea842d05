"""Which bentos must be signed to be published, and the check of a signature a client sends with a publish.

The registry holds blobs, not directories, so a signature is checked against the manifest alone
(``bento.signing.verify_manifest_signature``): signed by a trusted key, covering exactly the manifest's files.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bento_jupyter.bento.manifest_model import BentoManifest
from bento_jupyter.bento.signing import trusted_keys, verify_manifest_signature
from bento_jupyter.errors import BentoSignatureError
from bento_jupyter.registry.errors import Forbidden, InvalidRequest

MAX_BUNDLE_BYTES = 64 << 10


@dataclass(frozen=True)
class SignaturePolicy:
    """Names (fnmatch patterns) that need a signature by one of ``trusted_keys`` to be published."""

    required: tuple[str, ...] = ()
    keys: dict[str, Path] | None = None  # fingerprint -> key file

    @classmethod
    def configure(cls, required: list[str] | None, keys: str | None) -> SignaturePolicy:
        if required and not keys:
            raise InvalidRequest("--require-signature needs --trusted-keys (the public keys that may sign)")
        try:
            return cls(tuple(required or ()), trusted_keys(Path(keys)) if keys else None)
        except BentoSignatureError as exc:
            raise InvalidRequest(str(exc)) from None

    def requires(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self.required)

    def check_signed(self, name: str, signature: Any) -> None:
        """Forbidden when ``name`` needs a trusted signature and none came (before the manifest is even read)."""
        if signature is None and self.requires(name):
            raise Forbidden(
                f"{name} must be signed by a trusted key to be published here: "
                f"bento-jupyter sign {name} --key KEY, then push again"
            )

    def check(self, name: str, manifest: BentoManifest, signature: Any) -> dict[str, Any] | None:
        """The signature record to store with ``manifest``'s version (None when unsigned; ``manifest`` already
        checked); Forbidden when ``name`` needs a trusted signature it lacks, InvalidRequest when the signature is
        malformed or does not verify."""
        self.check_signed(name, signature)
        if signature is None:
            return None
        bundle = json.dumps(signature).encode()
        if not isinstance(signature, dict) or len(bundle) > MAX_BUNDLE_BYTES:
            raise InvalidRequest("'signature' must be a Sigstore bundle (bento.sig), a JSON object under 64 KiB")
        try:
            fingerprint = signature["verificationMaterial"]["publicKey"]["hint"]
        except (KeyError, TypeError):
            raise InvalidRequest(
                "'signature' is not a model-signing bundle (no verificationMaterial key hint)"
            ) from None
        if not isinstance(fingerprint, str) or len(fingerprint) != 64:
            raise InvalidRequest("'signature' names no key fingerprint (64 hex digits)")
        verified = False
        if self.keys is not None and (fingerprint in self.keys or self.requires(name)):
            try:
                verify_manifest_signature(manifest, bundle, self.keys)
            except BentoSignatureError as exc:
                raise Forbidden(f"refused: {exc}") if self.requires(name) else InvalidRequest(str(exc)) from None
            verified = True
        return {"bundle": bundle.decode(), "key_fingerprint": fingerprint, "verified": verified}
