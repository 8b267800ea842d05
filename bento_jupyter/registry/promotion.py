"""Moving an alias you can trust: per-alias policies (``compatible``, ``verified``), the gate that
enforces them with a readable API diff, verification records posted by clients or CI, and overrides
(``force``) that need an admin token and are recorded in the history."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import insert, select

from bento_jupyter.refs import check_label, check_version
from bento_jupyter.registry.compatibility import Change, api_changes, breaking
from bento_jupyter.registry.db.metadata import MetadataStore, now
from bento_jupyter.registry.db.tables import alias_policies, row_record, verifications, versions
from bento_jupyter.registry.errors import Forbidden, PromotionRefused
from bento_jupyter.registry.records import (
    AliasMove,
    AliasPolicy,
    RecordedVerification,
    SetPolicy,
    VerificationEntry,
    VerificationReport,
    parse_requirements,
)

DEFAULT_REQUIRES = ["compatible"]  # an alias with no policy of its own refuses incompatible APIs


class Promotions:
    """Alias policies, verification records and the gated alias move, on the metadata's database."""

    def __init__(self, metadata: MetadataStore) -> None:
        self.metadata = metadata

    # -- policies ---------------------------------------------------------------------------------

    def policy(self, name: str, alias: str) -> AliasPolicy:
        with self.metadata.transaction() as conn:
            self.metadata._require_bento(conn, name)
            key = (alias_policies.c.bento == name) & (alias_policies.c.alias == check_label(alias))
            row = conn.execute(select(alias_policies).where(key)).first()
        if row is None:
            return AliasPolicy(name=name, alias=alias, requires=DEFAULT_REQUIRES, default=True)
        return AliasPolicy(name=name, alias=alias, requires=parse_requirements(row.requires), default=False)

    def set_policy(self, name: str, alias: str, policy: SetPolicy, actor: str) -> AliasPolicy:
        wanted = policy.requires
        check_label(alias)
        stamp = now()
        with self.metadata.transaction(write=True) as conn:
            self.metadata._require_bento(conn, name)
            key = (alias_policies.c.bento == name) & (alias_policies.c.alias == alias)
            conn.execute(alias_policies.delete().where(key))
            conn.execute(
                insert(alias_policies).values(
                    bento=name, alias=alias, requires=",".join(wanted), updated_at=stamp, updated_by=actor
                )
            )
            self.metadata._record(conn, name, "policy", alias, None, None, actor, stamp, details={"requires": wanted})
        return AliasPolicy(name=name, alias=alias, requires=wanted, default=False)

    # -- verifications ----------------------------------------------------------------------------

    def record_verification(
        self, name: str, number: int, report: VerificationReport, actor: str
    ) -> RecordedVerification:
        """Store a verification result: whether it passed, and the whole report as sent."""
        stamp = now()
        with self.metadata.transaction(write=True) as conn:
            row = self.metadata._version_row(conn, name, check_version(number))
            new_id = conn.execute(
                insert(verifications)
                .values(
                    version_id=row.id, passed=report.passed, report=json.dumps(report.document), actor=actor, at=stamp
                )
                .returning(verifications.c.id)
            ).scalar_one()
            details = {"passed": report.passed, "verification": new_id}
            self.metadata._record(conn, name, "verify", None, None, number, actor, stamp, details=details)
        return RecordedVerification(id=new_id, name=name, version=number, passed=report.passed, actor=actor, at=stamp)

    def verifications(self, name: str, number: int | None) -> list[VerificationEntry]:
        """Every verification of ``name:number`` (None: the latest version), oldest first."""
        with self.metadata.transaction() as conn:
            row = self.metadata._version_row(conn, name, number)
            rows = conn.execute(
                select(verifications).where(verifications.c.version_id == row.id).order_by(verifications.c.id)
            )
            return [row_record(VerificationEntry, r, report=json.loads(r.report)) for r in rows]

    def _verified(self, name: str, number: int) -> bool:
        """Whether the newest verification of ``name:number`` passed."""
        with self.metadata.transaction() as conn:
            passed = conn.execute(
                select(verifications.c.passed)
                .join(versions, versions.c.id == verifications.c.version_id)
                .where(versions.c.bento == name, versions.c.number == number)
                .order_by(verifications.c.id.desc())
                .limit(1)
            ).scalar()
        return bool(passed)

    # -- the gate ---------------------------------------------------------------------------------

    def compare(self, name: str, old: int, new: int) -> list[Change]:
        """API changes from ``name:old`` to ``name:new``."""
        before = self.metadata.get_version(name, check_version(old)).manifest
        after = self.metadata.get_version(name, check_version(new)).manifest
        return api_changes(before, after)

    def move(
        self,
        name: str,
        alias: str,
        number: int,
        expected: int | None,
        actor: str,
        reason: str | None = None,
        force: bool = False,
        may_force: bool = False,
    ) -> AliasMove:
        """Move ``alias`` (compare-and-set on ``expected``) if its policy allows, or ``force`` (admins only)."""
        requires = self.policy(name, alias).requires
        changes = self.compare(name, expected, number) if expected is not None else []
        problems = []
        if "compatible" in requires:
            problems += [str(change) for change in breaking(changes)]
        if "verified" in requires and not self._verified(name, number):
            problems.append(f"- {name}:{number} has no passing verification (replay its samples and post the result)")
        details: dict[str, Any] = {"requires": requires, "changes": [str(c) for c in changes]}
        if problems:
            if not force:
                lines = "\n  ".join(problems)
                raise PromotionRefused(
                    f"{name}@{alias}: {expected if expected is not None else 'nothing'} -> {number} refused "
                    f"by its policy ({', '.join(requires)}):\n  {lines}\n(--force overrides, with an admin token)",
                    problems=problems,
                )
            if not may_force:
                raise Forbidden(f"forcing {name}@{alias} past its policy needs an admin token")
            details.update(forced=True, overridden=problems)
        return self.metadata.move_alias(name, alias, number, expected, actor, reason, details)
