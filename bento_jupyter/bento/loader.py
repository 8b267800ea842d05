"""Load a bento from disk into a ServiceDefinition, verifying every file on the way."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

from bento_jupyter.bento.local_store import Store
from bento_jupyter.bento.manifest import check_references, read_manifest, verified_path
from bento_jupyter.bento.manifest_model import BentoManifest
from bento_jupyter.bento.manifest_paths import MANIFEST_NAME
from bento_jupyter.bento.trust import TrustPolicy, check_trust
from bento_jupyter.capture import served_state
from bento_jupyter.capture.objects import load_object
from bento_jupyter.errors import BentoIntegrityError, BentoNotFoundError
from bento_jupyter.service.definition import ServiceDefinition


def bundles_in(path: Path) -> list[Path]:
    """The bentos a directory holds: itself when it is one, else its bento subdirectories (an export)."""
    if (path / MANIFEST_NAME).is_file():
        return [path]
    return sorted(p for p in path.iterdir() if (p / MANIFEST_NAME).is_file()) if path.is_dir() else []


def locate(target: str) -> Path:
    """A bento directory from a path (a bento, or an export holding one), or ``name[:version]`` in the store."""
    path = Path(target)
    if not path.is_dir():
        return Store("bentos").resolve(target).path
    found = bundles_in(path)
    if len(found) > 1:
        names = ", ".join(str(p) for p in found)
        raise BentoNotFoundError(f"{path} holds several bentos ({names}): name one of them")
    return found[0] if found else path


def module_name(bento_name: str) -> str:
    """The module a loaded bento's source becomes (importable from ``sys.modules`` once loaded)."""
    return "bento_" + bento_name.replace("-", "_").replace(".", "_")


class _NotLoadedYet:
    """What a stored object's name holds while the bento's source runs: using it there is a clear error."""

    def __init__(self, name: str) -> None:
        self._name = name

    def _refuse(self, *_: Any, **__: Any) -> Any:
        raise BentoIntegrityError(
            f"the bento's code uses the stored object {self._name!r} while its definitions are created (in a"
            " decorator or class body), before stored objects load; in the notebook, use it inside a function"
            " or method instead, or set that class attribute after the class is defined (it is then kept as served)"
        )

    __call__ = __getattr__ = __getitem__ = __setitem__ = __delitem__ = __contains__ = _refuse
    __iter__ = __len__ = __bool__ = _refuse


def load_bento(root: Path, trust: TrustPolicy) -> tuple[ServiceDefinition, BentoManifest]:
    """The service a bento defines, with its objects loaded, and its manifest.

    Every file is verified against the manifest first, every path opened is one of those files, and
    objects whose loader executes code load only as ``trust`` allows (:class:`UntrustedCodeError`).
    """
    manifest = read_manifest(root)
    check_references(manifest)
    check_trust(root, manifest, trust)
    if manifest.source is None:
        raise BentoIntegrityError(f"{root}: the manifest names no source module (a model, not a bento?)")
    source_path = verified_path(root, manifest, manifest.source)
    module = types.ModuleType(module_name(manifest.name))
    module.__file__ = str(source_path)
    sys.modules[module.__name__] = module
    namespace = module.__dict__
    # a default argument naming a stored object gets its served value once the objects load (served state)
    namespace.update({entry.name: _NotLoadedYet(entry.name) for entry in manifest.models})
    exec(compile(source_path.read_text(), module.__file__, "exec"), namespace)
    for entry in manifest.models:
        paths = [verified_path(root, manifest, path) for path in entry.paths]
        namespace[entry.name] = load_object(entry, paths, namespace)
    served_state.apply(namespace, namespace.pop(served_state.STATE_OBJECT, []))
    functions = []
    for api in manifest.apis:
        func = namespace.get(api.function)
        if func is None:
            raise BentoIntegrityError(f"{root}: API function {api.function!r} is not in {manifest.source}")
        functions.append(func)
    return ServiceDefinition.from_functions(manifest.name, functions), manifest
