"""Tables of stored bentos and models, shared by the magics and the CLI."""

from __future__ import annotations

from bento_jupyter.bento.local_store import Store
from bento_jupyter.bento.manifest import read_manifest
from bento_jupyter.bento.manifest_model import BentoManifest
from bento_jupyter.errors import BentoIntegrityError


def _size(manifest: BentoManifest) -> str:
    total: float = manifest.size
    for unit in ("B", "KiB", "MiB", "GiB"):
        if total < 1024 or unit == "GiB":
            return f"{total:.0f} {unit}" if unit == "B" else f"{total:.1f} {unit}"
        total /= 1024
    return ""


def stored_items_table(store: Store) -> str:
    """name:version, created, size and APIs (bentos) of every stored item, one per line."""
    rows = [("TAG", "CREATED", "SIZE", "APIS")]
    for item in store.list():
        try:
            manifest = read_manifest(item.path, verify_files=False, name=store.manifest_name)
        except BentoIntegrityError as exc:
            rows.append((item.tag, "corrupt", "-", str(exc)))
            continue
        apis = ",".join(api.name for api in manifest.apis) or "-"
        rows.append((item.tag, manifest.lineage.built_at or "?", _size(manifest), apis))
    if len(rows) == 1:
        return f"no {store.root.name} in {store.root}"
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)
