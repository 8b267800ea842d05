"""What the registry answers, as typed records: the metadata store returns them, the app sends them, the client
reads them back, and the OpenAPI document carries their JSON Schemas (``components/schemas``).

Fields a newer registry adds are ignored when a client reads a record (forward-compatible)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PlainValidator,
    PrivateAttr,
    StrictBool,
    ValidationError,
    WithJsonSchema,
    field_serializer,
    field_validator,
    model_validator,
)

from bento_jupyter.bento.manifest_model import BentoManifest, FileEntry
from bento_jupyter.refs import MAX_VERSION, NAME_PATTERN, check_name, check_version
from bento_jupyter.registry.errors import InvalidRequest

DIGEST = r"^sha256:[0-9a-f]{64}$"
NAME_SCHEMA = f"^{NAME_PATTERN.pattern}$"  # refs.check_name's names
SHA256 = r"^[0-9a-f]{64}$"


def _named(wire: str) -> AliasChoices:
    """A field whose wire name is a Python keyword: ``wire`` in JSON, ``WIRE_version`` in code."""
    return AliasChoices(wire, f"{wire}_version")


class Record(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    def to_json(self) -> dict[str, Any]:
        """The record as the API sends it."""
        return self.model_dump(mode="json", by_alias=True)


B = TypeVar("B", bound=BaseModel)


class ErrorBody(Record):
    """Every 4xx and 5xx answer: a message a person can act on and a stable code; some add details (``missing``
    blobs, the ``current`` target of an alias, a ``limit``)."""

    model_config = ConfigDict(extra="allow")

    error: str
    code: str


class Health(Record):
    status: str
    auth: str = Field(description="'open' (no tokens) or 'token'")


class VersionLineage(Record):
    """Where a version came from, as the registry indexes it (the manifest's lineage has the rest)."""

    notebook_path: str | None = None
    kernel_id: str | None = None
    git_commit: str | None = None
    git_branch: str | None = None


class SignedBy(Record):
    key: str = Field(description="the signing key's fingerprint (SHA-256 hex)")
    verified: bool = Field(description="checked against the registry's trusted keys when published")


class VersionSummary(Record):
    """One published version of a bento, without its manifest."""

    name: str
    version: int = Field(ge=1)
    digest: str = Field(pattern=DIGEST)
    size: int = Field(ge=0, description="bytes of every file")
    file_count: int = Field(ge=0)
    created_at: str
    created_by: str
    lineage: VersionLineage
    tags: list[str]
    aliases: list[str]
    code_executing_files: list[str] = Field(
        description="Files whose loader runs code (pickles): pulling or serving needs --trust-code"
    )
    signed_by: SignedBy | None = None


class Published(VersionSummary):
    created: bool = Field(description="false when a version with this digest already existed (it is returned)")


class VersionDetail(VersionSummary):
    """One version with its manifest (the document as published: its digest covers it) and signature, if any."""

    manifest: BentoManifest
    signature: dict[str, Any] | None = Field(default=None, description="the Sigstore bundle (bento.sig)")

    @field_validator("manifest", mode="before")
    @classmethod
    def _keep_the_document(cls, value: Any) -> Any:
        return BentoManifest.from_document(value) if not isinstance(value, BentoManifest) else value

    @field_serializer("manifest")
    def _as_published(self, manifest: BentoManifest) -> dict[str, Any]:
        return manifest.document


class BentoSummary(Record):
    name: str
    latest: int = Field(ge=1)
    versions: int = Field(ge=1)
    created_at: str
    aliases: dict[str, int]


class BentoInfo(Record):
    name: str
    latest: int = Field(ge=1)
    created_at: str
    aliases: dict[str, int]


class AliasTarget(Record):
    name: str
    alias: str
    version: int = Field(ge=1)


class AliasMove(Record):
    """An alias moved (or rolled back): from ``previous`` (None: it did not exist) to ``version``."""

    name: str
    alias: str
    version: int = Field(ge=1)
    previous: int | None
    history_id: int


class HistoryEntry(Record):
    """One change to a bento: a publish, an alias move or rollback, a tag, a deletion, a policy, a verification."""

    id: int
    action: str
    label: str | None = Field(description="the alias or tag it concerns")
    from_version: int | None = Field(validation_alias=_named("from"), serialization_alias="from")
    to_version: int | None = Field(validation_alias=_named("to"), serialization_alias="to")
    actor: str
    at: str
    reason: str | None
    details: dict[str, Any] | None


class HistoryEvent(HistoryEntry):
    """A history entry with its bento: what webhooks deliver."""

    bento: str


class Deletion(Record):
    name: str
    version: int = Field(ge=1)
    deleted: bool


class ApiChange(Record):
    api: str
    message: str
    breaking: bool


class Comparison(Record):
    from_version: int = Field(validation_alias=_named("from"), serialization_alias="from")
    to_version: int = Field(validation_alias=_named("to"), serialization_alias="to")
    compatible: bool
    changes: list[ApiChange]


class UploadedBlob(Record):
    """A blob the registry now holds: its sha256 matched the bytes received."""

    sha256: str = Field(pattern=SHA256)
    size: int = Field(ge=0)


class TokenRecord(Record):
    """A token as listed: never its secret."""

    id: str
    scope: str
    name: str
    created_at: str
    revoked_at: str | None = None


class CreatedToken(TokenRecord):
    token: str = Field(description="the secret: shown once, never stored")


class BentoList(Record):
    bentos: list[BentoSummary]


class VersionList(Record):
    versions: list[VersionSummary]


class AliasList(Record):
    aliases: dict[str, int]


class History(Record):
    history: list[HistoryEntry]


class MissingBlobs(Record):
    missing: list[str]


class TokenList(Record):
    tokens: list[TokenRecord]


class AliasPolicy(Record):
    """What an alias requires before it moves (``compatible``, ``verified``); ``default`` when never set."""

    name: str
    alias: str
    requires: list[str]
    default: bool


class RecordedVerification(Record):
    id: int
    name: str
    version: int = Field(ge=1)
    passed: bool
    actor: str
    at: str


class VerificationEntry(Record):
    id: int
    passed: bool
    report: dict[str, Any] = Field(description="the verification as posted: passed and any report fields")
    actor: str
    at: str


class VerificationList(Record):
    verifications: list[VerificationEntry]


class Webhook(Record):
    """A webhook as listed: never its secret."""

    id: str
    url: str
    events: list[str]
    created_at: str
    created_by: str


class CreatedWebhook(Webhook):
    secret: str = Field(description="signs each delivery (X-Hub-Signature-256): shown once")


class WebhookList(Record):
    webhooks: list[Webhook]


class Delivery(Record):
    """One event sent (or to be sent) to a webhook, and how its last attempt went."""

    id: int
    hook: str
    event: str
    status: str = Field(description="pending, sending, delivered or failed")
    attempts: int = Field(ge=0)
    response_status: int | None
    error: str | None
    created_at: str
    updated_at: str
    payload: dict[str, Any]


class DeliveryList(Record):
    deliveries: list[Delivery]


# -- request bodies: the app parses each through its model, and the OpenAPI states the model's schema -------------

_VERSION_SCHEMA = {"type": "integer", "minimum": 1, "maximum": MAX_VERSION}
# A version number as refs.check_version takes it (3.0 is an integer to JSON Schema; true and "3" are not).
VersionNumber = Annotated[int, PlainValidator(check_version), WithJsonSchema(_VERSION_SCHEMA)]
_NO_NUL = r"^[^\x00]*$"  # PostgreSQL text holds no NUL
Reason = Annotated[str | None, Field(max_length=1000, pattern=_NO_NUL)]

REQUIREMENTS = ("compatible", "verified")  # what an alias's policy may require before the alias moves
EVENTS = ("publish", "alias", "rollback", "tag", "untag", "delete", "policy", "verify")  # what a webhook may hear
# Each action a bento's history records, as `history --help` names it (one per EVENTS action).
HISTORY_CHANGES = {
    "publish": "publishes",
    "alias": "alias moves",
    "rollback": "rollbacks",
    "tag": "tags",
    "untag": "untags",
    "delete": "deletions",
    "policy": "alias policy changes",
    "verify": "recorded verifications",
}
# A webhook's URL: http(s), a host name or IPv4 address, an optional port and a printable-ASCII path.
URL_PATTERN = r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[!-~]*)?"
MAX_URL_LENGTH = 2048


def parse_body(model: type[B], value: Any, usage: str) -> B:
    """``value`` (a JSON body) as ``model``, or :class:`InvalidRequest` naming the field and what to send."""
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        reason = str(error["ctx"]["error"]) if error["type"] == "value_error" else error["msg"]
        field = ".".join(str(part) for part in error["loc"])
        raise InvalidRequest(f"{field + ': ' if field else ''}{reason}; {usage}") from None


def _word_list_schema(words: tuple[str, ...], at_least_one: bool) -> dict[str, Any]:
    """A list of ``words`` or the same as one comma-separated string; spaces around a word are ignored."""
    word = "(" + "|".join(re.escape(w) for w in words) + ")"
    item = f" *{word}? *"
    array: dict[str, Any] = {"type": "array", "items": {"type": "string", "pattern": f"^{item}$"}}
    text = f"^{item}(,{item})*$"
    if at_least_one:
        array["contains"] = {"type": "string", "pattern": f"^ *{word} *$"}
        text = f"^(?=.*[^ ,]){text[1:]}"
    return {"anyOf": [array, {"type": "string", "pattern": text}]}


def _words(value: Any) -> set[str] | None:
    """The words of a list or a comma-separated string, spaces around each ignored; None if it is neither."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        return None
    return {i.strip(" ") for i in items} - {""}


def parse_requirements(value: Any) -> list[str]:
    """``["verified", "compatible"]`` or ``"verified,compatible"`` (``"none"`` or empty: no checks), sorted."""
    wanted = _words(value)
    if wanted is None:
        raise ValueError("a list of checks among 'compatible', 'verified'")
    unknown = sorted(wanted - {*REQUIREMENTS, "none"})
    if unknown:
        raise ValueError(f"unknown check {unknown[0]!r}; use 'compatible', 'verified' or 'none'")
    return sorted(wanted - {"none"})


def parse_events(value: Any) -> list[str]:
    """``["alias", "rollback"]``, ``"alias,rollback"`` or ``"*"`` (every event), sorted; at least one."""
    wanted = _words(value)
    if wanted is None or (not isinstance(value, str) and not value):
        raise ValueError(f"a list among {', '.join(EVENTS)}, or '*'")
    if "*" in wanted:
        return ["*"]
    unknown = sorted(wanted - set(EVENTS))
    if unknown or not wanted:
        raise ValueError(f"unknown event {unknown[0] if unknown else ''!r}; use {', '.join(EVENTS)} or '*'")
    return sorted(wanted)


class MoveAlias(Record):
    """Point an alias at ``version`` if it now points at ``expected`` (null: it must not exist yet)."""

    version: VersionNumber
    expected: VersionNumber | None
    reason: Reason = None
    force: StrictBool = Field(default=False, description="move despite the alias's policy (admin scope)")


class RollbackAlias(Record):
    """Move an alias back; ``expected`` (optional) is the version the caller believes it points at now."""

    expected: VersionNumber | None = None
    reason: Reason = None


class CreateToken(Record):
    scope: Literal["read", "write", "admin"]
    name: Annotated[str, PlainValidator(check_name), WithJsonSchema({"type": "string", "pattern": NAME_SCHEMA})] = (
        "token"
    )


class MissingBlobsQuery(Record):
    digests: list[Annotated[str, Field(pattern=SHA256)]] = Field(max_length=100_000)


class SetPolicy(Record):
    """What an alias requires before it moves: checks among ``compatible``, ``verified`` ([] or ``none``: none)."""

    requires: Annotated[
        list[str],
        BeforeValidator(parse_requirements),
        WithJsonSchema(_word_list_schema((*REQUIREMENTS, "none"), at_least_one=False)),
    ]


class VerificationReport(Record):
    """A verification of a version: whether it passed, and any report fields, the whole body kept as sent."""

    model_config = ConfigDict(extra="allow")

    passed: StrictBool
    _sent: dict[str, Any] = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _keep_as_sent(cls, value: Any, handler: ModelWrapValidatorHandler[VerificationReport]) -> VerificationReport:
        report = handler(value)
        if isinstance(value, dict):
            report._sent = value
        return report

    @property
    def document(self) -> dict[str, Any]:
        """The report as it was sent: every field, in its order, ``passed`` included."""
        return self._sent or self.model_dump(mode="json")


class CreateWebhook(Record):
    """A URL to POST events to, the events it hears (``*``: all), the secret signing each delivery (none: made)."""

    url: str = Field(max_length=MAX_URL_LENGTH, pattern=f"^{URL_PATTERN}$")
    events: Annotated[
        list[str], BeforeValidator(parse_events), WithJsonSchema(_word_list_schema((*EVENTS, "*"), at_least_one=True))
    ] = ["*"]
    secret: Annotated[str | None, Field(min_length=16, max_length=128, pattern=_NO_NUL)] = None


class PublishManifest(BentoManifest):
    """A bento manifest (bento.yaml) as a publish sends it: its digest covers every other field, those this
    registry does not know included, so the document is kept as sent. A signed bento's bento.sig rides along as
    ``signature``, outside the digest."""

    name: str = Field(pattern=NAME_SCHEMA)
    digest: str = Field(pattern=DIGEST)
    files: list[FileEntry]
