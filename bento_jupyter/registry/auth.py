"""Bearer tokens: random 256-bit secrets, stored as sha256, checked in constant time, scoped."""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import Engine, insert, select, update

from bento_jupyter.refs import check_name
from bento_jupyter.registry.db.metadata import now
from bento_jupyter.registry.db.tables import row_record, tokens
from bento_jupyter.registry.errors import Forbidden, InvalidRequest, NotFound, Unauthorized
from bento_jupyter.registry.records import TokenRecord

TOKEN_PREFIX = "bjr_"


class Scope(enum.IntEnum):
    """What a token may do; each scope includes the ones below it."""

    READ = 1
    WRITE = 2
    ADMIN = 3

    @classmethod
    def parse(cls, text: str) -> Scope:
        try:
            return cls[text.upper()]
        except KeyError:
            raise InvalidRequest(f"invalid scope {text!r}: use read, write or admin") from None

    def __str__(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: recorded in the history as ``actor``."""

    actor: str
    scope: Scope

    def require(self, needed: Scope) -> None:
        if self.scope < needed:
            raise Forbidden(f"this token has {self.scope} scope; the operation needs {needed}")


OPEN_PRINCIPAL = Principal("anonymous", Scope.ADMIN)


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class TokenStore:
    """Tokens in the registry database; only their hashes are stored."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, scope: Scope, name: str = "token") -> tuple[str, TokenRecord]:
        """A new token: the secret (shown once, never stored) and its record."""
        check_name(name)
        token_id = secrets.token_hex(6)
        secret = f"{TOKEN_PREFIX}{token_id}.{secrets.token_urlsafe(32)}"  # the id finds the row; 256 random bits
        record = TokenRecord(id=token_id, scope=str(scope), name=name, created_at=now())
        with self.engine.begin() as conn:
            conn.execute(insert(tokens).values(hash=hash_token(secret), **dict(record)))
        return secret, record

    def list(self) -> list[TokenRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(tokens).order_by(tokens.c.created_at))
            return [row_record(TokenRecord, r) for r in rows]  # never the hash column

    def revoke(self, token_id: str) -> None:
        with self.engine.begin() as conn:
            done = conn.execute(
                update(tokens).where(tokens.c.id == token_id, tokens.c.revoked_at.is_(None)).values(revoked_at=now())
            )
        if done.rowcount != 1:
            raise NotFound(f"no active token with id {token_id!r}")

    def authenticate(self, authorization: str | None) -> Principal:
        """The principal of an ``Authorization: Bearer ...`` header, or Unauthorized."""
        scheme, _, secret = (authorization or "").partition(" ")
        secret = secret.strip()
        if scheme.lower() != "bearer" or not secret or len(secret) > 256:
            raise Unauthorized("send 'Authorization: Bearer TOKEN' (create one: bento-jupyter registry token create)")
        token_id = secret.removeprefix(TOKEN_PREFIX).partition(".")[0]
        with self.engine.connect() as conn:
            row = conn.execute(select(tokens).where(tokens.c.id == token_id[:16])).first()
        stored = row.hash if row is not None else hash_token("")
        if not hmac.compare_digest(stored, hash_token(secret)) or row is None or row.revoked_at is not None:
            raise Unauthorized("unknown or revoked token")
        return Principal(f"{row.name}:{row.id}", Scope.parse(row.scope))
