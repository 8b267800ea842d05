"""Load a bento from disk into a ServiceDefinition, verifying every file on the way."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

from bento_jupyter.bento.manifest import read_manifest
from bento_jupyter.bento.store import Store
from bento_jupyter.capture.objects import load_object
from bento_jupyter.errors import BentoIntegrityError
from bento_jupyter.service.definition import ServiceDefinition


def locate(target: str) -> Path:
    """A bento directory from a path, or from ``name[:version]`` in the local store."""
    path = Path(target)
    if path.is_dir():
        return path
    return Store("bentos").resolve(target).path


def load_bento(root: Path) -> tuple[ServiceDefinition, dict[str, Any]]:
    """The service a bento defines, with its objects loaded, and its manifest."""
    manifest = read_manifest(root)
    module = types.ModuleType(f"bento_{manifest['name'].replace('-', '_').replace('.', '_')}")
    module.__file__ = str(root / manifest["source"])
    sys.modules[module.__name__] = module
    source = (root / manifest["source"]).read_text()
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    namespace = module.__dict__
    for entry in manifest["models"]:
        namespace[entry["name"]] = load_object(entry, root / "models", namespace)
    functions = []
    for api in manifest["apis"]:
        func = namespace.get(api["function"])
        if func is None:
            raise BentoIntegrityError(f"{root}: API function {api['function']!r} is not in {manifest['source']}")
        functions.append(func)
    return ServiceDefinition.from_functions(manifest["name"], functions), manifest
