"""The registry's exceptions: each carries the HTTP status and code the API answers with."""

from __future__ import annotations

from typing import Any

from bento_jupyter.errors import BentoJupyterError


class RegistryError(BentoJupyterError):
    """Base of every registry error; ``status`` and ``code`` are what the API sends."""

    status = 500
    code = "internal"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_json(self) -> dict[str, Any]:
        return {"error": self.message, "code": self.code, **self.details}


class InvalidRequest(RegistryError):
    """A name, tag, digest, manifest or body the registry refuses to take."""

    status = 400
    code = "invalid"


class DigestMismatch(InvalidRequest):
    """Bytes whose sha256 is not the digest they claim: nothing was stored.

    A 422, not a 400: the request is well formed (the OpenAPI schema holds) but its content does not hash to
    the digest it names, which no schema can state."""

    status = 422
    code = "digest_mismatch"


class Unauthorized(RegistryError):
    """No token, or one the registry does not know (or has revoked)."""

    status = 401
    code = "unauthorized"


class Forbidden(RegistryError):
    """A valid token whose scope does not allow the operation."""

    status = 403
    code = "forbidden"


class NotFound(RegistryError):
    """No such bento, version, alias, blob or token."""

    status = 404
    code = "not_found"


class Conflict(RegistryError):
    """A compare-and-set lost, or a publish references blobs the registry lacks."""

    status = 409
    code = "conflict"


class PromotionRefused(Conflict):
    """An alias's policy refuses the move: an incompatible API or a missing verification."""

    code = "promotion_refused"


class PayloadTooLarge(RegistryError):
    """A request body over the server's limit."""

    status = 413
    code = "too_large"


class RegistryIntegrityError(RegistryError):
    """Downloaded or cached content does not match its digest: it was refused, nothing was written."""

    status = 502
    code = "integrity"


class RegistryUnavailable(RegistryError):
    """The registry could not be reached, or answered something that is not the registry API."""

    status = 503
    code = "unavailable"


ERRORS_BY_CODE: dict[str, type[RegistryError]] = {
    cls.code: cls
    for cls in (
        RegistryError,
        InvalidRequest,
        DigestMismatch,
        Unauthorized,
        Forbidden,
        NotFound,
        Conflict,
        PromotionRefused,
        PayloadTooLarge,
        RegistryIntegrityError,
        RegistryUnavailable,
    )
}
