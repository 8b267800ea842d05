"""Whether a bento may be loaded: files whose loader executes code need an explicit decision.

What a file can do on load is decided by the loader that would open it (``capture.model_entry.LOADERS``),
never by a manifest field: a ``code_executing: false`` written into a manifest changes nothing.
The decision comes from the user (``--trust-code``), from the kernel that built the bento (it
trusts what it wrote itself, by manifest digest), or from a signature by a trusted key
(``--require-signature KEYS``, checked by ``bento.signing``).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bento_jupyter.bento.manifest_model import BentoManifest
from bento_jupyter.errors import BentoJupyterError

TRUST_FLAG = "--trust-code"
_BUILT_HERE: set[str] = set()  # manifest digests this process wrote


class UntrustedCodeError(BentoJupyterError):
    """A bento holds files that execute code when loaded, and nobody decided to trust it."""


@dataclass(frozen=True)
class TrustPolicy:
    """Who vouches for code-executing files: the user (``trust_code``), approved manifest digests, or keys."""

    trust_code: bool = False
    trusted_digests: frozenset[str] = field(default_factory=frozenset)
    trusted_keys: Path | None = None  # a key directory, for signed bentos
    signature_required: bool = False  # refuse any bento not signed by one of ``trusted_keys``

    @classmethod
    def from_arguments(cls, args: Any) -> TrustPolicy:
        """The policy that ``--trust-code`` and ``--require-signature KEYS`` ask for."""
        keys = Path(args.require_signature) if args.require_signature else None
        return cls(trust_code=args.trust_code, trusted_keys=keys, signature_required=keys is not None)


def signed_by_trusted_key(root: Path, keys: Path | None) -> bool:
    """True when the bento at ``root`` carries a valid signature by a key in ``keys`` (``bento.sig`` covers
    every file, the manifest included); a bad signature raises :class:`BentoSignatureError`."""
    if keys is None:
        return False
    from bento_jupyter.bento.signing import verify_bento  # model-signing: a slow import, only when asked

    verify_bento(root, keys)
    return True


def remember_built(digest: str) -> None:
    """Record that this process built the bento with manifest ``digest``: it may load it without asking."""
    _BUILT_HERE.add(digest)


def code_executing_files(manifest: BentoManifest) -> list[str]:
    """Paths (relative to the bento) that a code-executing loader would open, e.g. ``models/clf.pkl``."""
    found = []
    for entry in manifest.models:
        if entry.executes_code:
            found += entry.paths or [f"models/{entry.name}"]
    return found


def executes_code_on_load(manifest: BentoManifest) -> bool:
    return bool(code_executing_files(manifest))


def check_trust(root: Path, manifest: BentoManifest, policy: TrustPolicy) -> None:
    """Raise :class:`UntrustedCodeError` (naming the files and the flag) unless loading ``root`` is vouched for;
    :class:`BentoSignatureError` when ``policy`` requires a signature that is missing or not by a trusted key."""
    if policy.signature_required and signed_by_trusted_key(root, policy.trusted_keys):
        return  # verify_bento raised BentoSignatureError unless a trusted key signed every file
    files = code_executing_files(manifest)
    if not files or policy.trust_code:
        return
    digest = manifest.digest
    if digest in _BUILT_HERE or digest in policy.trusted_digests:
        return
    if signed_by_trusted_key(root, policy.trusted_keys):
        return
    raise UntrustedCodeError(
        f"{manifest.name} executes code when loaded ({', '.join(files)}: pickle runs any code it holds); "
        f"load it only if you trust who built it: pass {TRUST_FLAG}"
    )


def add_trust_argument(parser: Any) -> None:
    """``--trust-code`` on a command that loads or fetches bentos."""
    parser.add_argument(
        TRUST_FLAG,
        dest="trust_code",
        action="store_true",
        help="allow files that execute code when loaded (pickles): only for bentos whose builder you trust",
    )


def add_signature_argument(parser: Any, what: str) -> None:
    """``--require-signature KEYS`` on a command that loads or fetches bentos: ``what`` it then does only."""
    parser.add_argument(
        "--require-signature",
        metavar="KEYS",
        help=f"{what} only if signed by one of these public keys (file or dir); then pickles are accepted too",
    )


def report_signer(root: Path, policy: TrustPolicy) -> None:
    """When ``policy`` requires a signature, check the bento at ``root`` (also one a pull found already stored)
    and name its signer on stderr; :class:`BentoSignatureError` otherwise."""
    if policy.signature_required and policy.trusted_keys is not None:
        from bento_jupyter.bento.signing import verify_bento

        print(f"{root}: signed by {verify_bento(root, policy.trusted_keys)}", file=sys.stderr)
