"""What a manifest (``bento.yaml``, ``model.yaml``) holds, as one pydantic model family.

Every manifest is written from a :class:`BentoManifest` and read back into one. The digest covers the JSON
*document* (the exact object written or received), never a re-serialisation of the model, so a manifest written
by an older or newer bento_jupyter keeps its digest and signature: fields this version does not know are kept
in the document and ignored by the model (forward-compatible read); fields it knows must have their types.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_serializer

from bento_jupyter.bento.manifest_paths import MAX_PATH_BYTES, MAX_SIZE
from bento_jupyter.capture.model_entry import ModelEntry
from bento_jupyter.errors import InvalidManifest
from bento_jupyter.service.settings import ServiceSettings

SCHEMA_VERSION = 1
VerificationState = Literal["passed", "partial", "unverified", "failed"]
Number = int | float  # kept as written: 5 stays 5 and 5.0 stays 5.0, so a document dumps as it was given


class _Record(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class FileEntry(_Record):
    """One file of the bento (the manifest and its signature excepted): ``path`` relative to the bento root.

    Whether every path can exist on every filesystem is checked where a manifest arrives from elsewhere (a publish,
    a pull, an import): :func:`bento_jupyter.bento.manifest_paths.check_file_list`."""

    path: str = Field(min_length=1, max_length=MAX_PATH_BYTES)  # at most that many UTF-8 bytes, so characters
    size: int = Field(ge=0, le=MAX_SIZE)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="64 lowercase hex digits, no 'sha256:' prefix")


class ApiEntry(_Record):
    """One ``@api`` as served when the bento was built: route, batching, limits and verification options.

    Defaults are those of ``@api``: an older manifest without a field meant what the default means."""

    name: str
    route: str
    function: str  # the handler's name in the bento's source module
    batchable: bool = False
    max_batch_size: int = 64
    max_latency_ms: Number = 100.0
    batch_dim: int = 0
    device: str | None = None
    verify: bool = True
    tolerance: Number = 1e-6
    stream: bool = False
    task: bool = False
    max_concurrency: int | None = None
    max_queue_size: int | None = None
    timeout: Number | None = None  # seconds


class GitLineage(_Record):
    model_config = ConfigDict(extra="allow")

    commit: str | None = None
    branch: str | None = None
    dirty: bool | None = None


class CellLineage(_Record):
    model_config = ConfigDict(extra="allow")

    cell_id: str | None = None
    execution_count: int | None = None
    source_sha256: str | None = None
    source: str | None = None


class Lineage(_Record):
    """Where the bento came from, as the lineage providers (capture/lineage.py) found it; providers may add more."""

    model_config = ConfigDict(extra="allow")

    notebook_path: str | None = None
    kernel_id: str | None = None
    cells: list[CellLineage] = []
    git: GitLineage | None = None
    built_at: str | None = None  # ISO 8601, UTC
    built_by: str | None = None
    python: str | None = None
    platform: str | None = None
    executable: str | None = None


class Verification(_Record):
    """The build's replay of the kernel's answered requests in a fresh process (server/replay.py)."""

    state: VerificationState
    replayed: int  # samples replayed
    opted_out: list[str] = []  # APIs with verify=False
    unsampled: list[str] = []  # APIs that had no answered request to replay


class BentoManifest(_Record):
    """A bento's (``kind="bento"``) or a stored model's (``kind="model"``) manifest.

    Build one with its content fields; :func:`bento_jupyter.bento.manifest.write_manifest` fills in
    ``schema_version``, ``files`` and ``digest``. Read one with :meth:`from_document`."""

    schema_version: int = SCHEMA_VERSION
    kind: Literal["bento", "model"] = "bento"
    name: str
    digest: str = ""  # ``sha256:`` + the hex sha256 of the canonical document without this field
    files: list[FileEntry] = []
    created_with: str | None = None
    python_version: str | None = None
    requirements: list[str] = []
    requirements_lock: str | None = None
    source: str | None = None  # the service module, e.g. ``src/service.py``
    apis: list[ApiEntry] = []
    settings: ServiceSettings | None = None
    models: list[ModelEntry] = []
    service_schema: dict[str, Any] | None = Field(default=None, alias="schema")  # service/schema.py
    openapi: dict[str, Any] | None = None
    lineage: Lineage = Lineage()
    verification: Verification | None = None

    _document: dict[str, Any] | None = PrivateAttr(default=None)

    @field_serializer("settings")
    def _settings_as_recorded(self, settings: ServiceSettings | None) -> dict[str, Any] | None:
        return settings.to_manifest() if settings is not None else None

    @classmethod
    def from_document(cls, document: Any, where: str = "the manifest") -> BentoManifest:
        """The typed view of a manifest's JSON ``document`` (kept as it is for digests and signatures).

        Raises :class:`InvalidManifest` naming the first field that does not fit, ``where`` saying whose."""
        if not isinstance(document, dict):
            raise InvalidManifest(f"{where} must be a JSON object")
        try:
            manifest = cls.model_validate(document)
        except ValidationError as exc:
            error = exc.errors(include_url=False)[0]
            field = ".".join(str(part) for part in error["loc"]) or "(top level)"
            raise InvalidManifest(f"{where}: field {field!r}: {error['msg']}") from None
        manifest._document = document
        return manifest

    @property
    def document(self) -> dict[str, Any]:
        """The JSON object this manifest is: as read or received, else as this model writes it."""
        if self._document is None:
            self._document = self.model_dump(mode="json", by_alias=True, exclude_unset=True)
        return self._document

    def replace(self, **changes: Any) -> BentoManifest:
        """A copy with ``changes`` (field names) applied; its document is the model's, written afresh."""
        changed = self.model_copy(update=changes)
        changed._document = None
        return changed

    @property
    def served_settings(self) -> ServiceSettings:
        """The settings the bento was served with (an older bento without them: the defaults)."""
        return self.settings or ServiceSettings()

    @property
    def listed_paths(self) -> set[str]:
        return {entry.path for entry in self.files}

    @property
    def size(self) -> int:
        """Bytes of every listed file."""
        return sum(entry.size for entry in self.files)
