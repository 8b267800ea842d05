"""One stored object as a manifest lists it under ``models``: its loader (``kind``), files and device."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

# Loader kind -> whether loading runs code from the files. Unknown kinds are treated as code-executing.
LOADERS: dict[str, bool] = {"torch": False, "numpy": False, "pickle": True}


class ModelEntry(BaseModel):
    """A stored object: ``name`` in the bento's namespace, ``files`` under ``models/``, loaded by ``kind``.

    ``code_executing`` is what the builder wrote, for people reading the manifest; trust never believes it
    (:attr:`executes_code` asks the loader). Fields a newer writer adds are ignored on read."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str
    kind: str
    files: list[str]
    type: str | None = None  # the stored value's class, ``module.QualName`` (torch, pickle)
    device: str | None = None  # torch: where the module's parameters lived when it was captured
    code_executing: bool | None = None

    @property
    def executes_code(self) -> bool:
        """Whether loading this entry can run code from its files: decided by its loader alone."""
        return LOADERS.get(self.kind, True)

    @property
    def paths(self) -> list[str]:
        """The entry's files relative to the bento (``models/NAME``)."""
        return [f"models/{name}" for name in self.files]
