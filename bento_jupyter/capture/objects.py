"""Store captured objects on disk and load them back, as safely as each kind allows.

* torch modules: every tensor they hold (parameters, persistent and non-persistent buffers) as
  safetensors, each shared (tied) tensor once and restored as one object; the architecture as a
  weightless (meta-device) pickle loaded with ``torch.load(weights_only=True)`` that may only name
  torch classes and classes from the bento's own source;
* plain numpy arrays (exactly ``np.ndarray``, no object fields): ``.npy`` without pickle;
* anything else: cloudpickle, which runs whatever code the file holds, referring to the bento's own
  definitions and to objects stored before it by name (``capture.pickling``).

Objects are saved, and listed in the manifest, in the order they must be loaded: tensors and arrays
first, then plain objects, then callables (which usually refer to the others).

Whether loading executes code is a property of the loader (``LOADERS``), never of a manifest field.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import io
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from bento_jupyter.capture import module_tensors, pickling
from bento_jupyter.capture.model_entry import ModelEntry
from bento_jupyter.capture.served_state import STATE_OBJECT
from bento_jupyter.errors import BentoIntegrityError, BentoJupyterError, CaptureError
from bento_jupyter.torch_probe import is_torch_module, required_torch

_NOTEBOOK_PREFIX = "__main__."
_MISSING = object()


# kind -> whether its loader can execute code held in the file (unknown kinds count as executing).
def stores_as_npy(value: Any) -> bool:
    """Whether ``.npy`` without pickle gives ``value`` back as it is: subclasses (``np.matrix``, masked
    arrays) would come back as plain arrays, object fields not at all."""
    return type(value) is np.ndarray and not value.dtype.hasobject


def _weightless_copy(module: Any) -> Any:
    """A copy of ``module`` whose parameters and buffers live on the meta device (no data copied)."""
    torch = required_torch()
    memo: dict[int, Any] = {}
    for param in module.parameters():
        memo[id(param)] = torch.nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
    for buffer in module.buffers():
        memo[id(buffer)] = buffer.to("meta")
    return copy.deepcopy(module, memo)


@contextlib.contextmanager
def _notebook_classes_importable(module: Any) -> Iterator[None]:
    """Let pickle find the notebook's classes as ``__main__.X`` even when the user namespace is not
    ``sys.modules["__main__"]`` (IPython embedded, terminal shells)."""
    main = sys.modules["__main__"]
    added = []
    for cls in {type(m) for m in module.modules()}:
        if cls.__module__ == "__main__" and getattr(main, cls.__qualname__, None) is not cls:
            added.append((cls.__qualname__, getattr(main, cls.__qualname__, _MISSING)))
            setattr(main, cls.__qualname__, cls)
    try:
        yield
    finally:
        for name, previous in added:
            if previous is _MISSING:
                delattr(main, name)
            else:
                setattr(main, name, previous)


def architecture_pickle(module: Any) -> bytes:
    """A torch module without its tensors, as ``torch.save`` writes it (raises what pickling it raises)."""
    buffer = io.BytesIO()
    with _notebook_classes_importable(module):
        required_torch().save(_weightless_copy(module), buffer)
    return buffer.getvalue()


def save_object(value: Any, directory: Path, name: str, references: pickling.References | None = None) -> ModelEntry:
    """Write ``value`` under ``directory``; return its manifest entry. A pickle refers to ``references``
    (objects the loaded bento holds by name) instead of copying them."""
    directory.mkdir(parents=True, exist_ok=True)
    if is_torch_module(value):
        weights, architecture = f"{name}.safetensors", f"{name}.arch.pt"
        module_tensors.save_tensors(value, directory / weights)
        (directory / architecture).write_bytes(architecture_pickle(value))
        device = next((str(p.device) for p in value.parameters()), "cpu")
        return ModelEntry(
            name=name,
            kind="torch",
            type=f"{type(value).__module__}.{type(value).__qualname__}",
            files=[weights, architecture],
            device=device,
            code_executing=False,
        )
    if stores_as_npy(value):
        np.save(directory / f"{name}.npy", value, allow_pickle=False)
        return ModelEntry(name=name, kind="numpy", files=[f"{name}.npy"], code_executing=False)
    with (directory / f"{name}.pkl").open("wb") as handle:
        pickling.dump(value, handle, references or pickling.References())
    return ModelEntry(
        name=name,
        kind="pickle",
        type=f"{type(value).__module__}.{type(value).__qualname__}",
        files=[f"{name}.pkl"],
        code_executing=True,
    )


def _load_rank(value: Any) -> int:
    if is_torch_module(value) or stores_as_npy(value):
        return 0
    return 2 if callable(value) else 1


def save_objects(
    objects: dict[str, Any],
    directory: Path,
    references: pickling.References | None = None,
    origins: dict[str, str] | None = None,
) -> list[ModelEntry]:
    """Save every object in load order; each may refer to ``references`` and to those saved before it.

    Raises CaptureError, one line naming the object and where it came from (``origins``: name -> cell), when
    an object cannot be written."""
    references = references or pickling.References()
    entries: list[ModelEntry] = []
    # the served state last: it sets definitions' attributes to any of the others
    order = sorted(objects.items(), key=lambda item: (item[0] == STATE_OBJECT, _load_rank(item[1]), item[0]))
    for name, value in order:
        try:
            entries.append(save_object(value, directory, name, references))
        except BentoJupyterError:
            raise
        except Exception as exc:  # whatever a storage library raises, the user gets one line about their object
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CaptureError(
                f"cannot store {name!r} ({type(value).__qualname__}, from {(origins or {}).get(name, 'the notebook')}):"
                f" {reason}; create it inside the function that uses it, or replace it with a value that can be saved"
            ) from None
        references.add(name, value)
    return entries


def _torch_module_class(qualified: str) -> Any:
    """The torch module class named ``qualified`` (``torch.nn.modules.linear.Linear``), or None."""
    import torch

    module, _, attr = qualified.rpartition(".")
    with contextlib.suppress(ImportError):
        candidate = getattr(importlib.import_module(module), attr, None)
        if isinstance(candidate, type) and issubclass(candidate, torch.nn.Module):
            return candidate
    return None


def _module_path(name: str, path: str) -> str:
    """Python for the submodule at ``path`` of the variable ``name``: ``model[0].attn``."""
    return name + "".join(f"[{part}]" if part.isdigit() else f".{part}" for part in path.split(".") if part)


def module_refusal(name: str, module: Any) -> str | None:
    """Why the bento cannot store the torch module held by the variable ``name`` and give it back as it is,
    followed by what to do instead (``"<reason>; <fix>"``), or None when it can.

    The one place that knows which kinds of module the storage path (safetensors + a weightless pickle
    loaded with ``weights_only=True``) cannot round-trip."""
    torch = required_torch()
    from torch.nn.utils import parametrize, prune
    from torch.nn.utils.spectral_norm import SpectralNorm
    from torch.nn.utils.weight_norm import WeightNorm

    if isinstance(module, torch.jit.ScriptModule):
        return (
            f"it is a TorchScript module ({type(module).__name__}), which a bento stores only as an nn.Module"
            " (its tensors and a pickle of its classes); serve the eager module it was scripted from"
            f" (build it without torch.jit.script, e.g. {name} = N().eval())"
        )
    for path, sub in module.named_modules():
        where = _module_path(name, path)
        if isinstance(sub, torch.jit.ScriptModule):
            return (
                f"{where} is a TorchScript module ({type(sub).__name__}), which a bento stores only as an"
                " nn.Module; put the eager module it was scripted from there instead"
            )
        if parametrize.is_parametrized(sub):
            tensor = next(iter(sub.parametrizations.keys()))
            return (
                f"{where}.{tensor} is parametrized (torch.nn.utils.parametrize, e.g. parametrizations.weight_norm),"
                " which torch saves only through state_dict(); bake it in before building with"
                f" torch.nn.utils.parametrize.remove_parametrizations({where}, {tensor!r}) (after weight_norm also"
                f" {where}._load_state_dict_pre_hooks.clear(): it leaves a hook that cannot be saved)"
            )
        for hook in sub._forward_pre_hooks.values():
            if isinstance(hook, prune.BasePruningMethod):
                return (
                    f"{where}.{hook._tensor_name} is pruned through a {type(hook).__name__} forward pre-hook"
                    " (torch.nn.utils.prune), which a bento cannot load without running code; make the"
                    f" pruning permanent before building with prune.remove({where}, {hook._tensor_name!r})"
                )
            if isinstance(hook, WeightNorm | SpectralNorm):
                undo = "remove_weight_norm" if isinstance(hook, WeightNorm) else "remove_spectral_norm"
                return (
                    f"{where}.{hook.name} is recomputed by a {type(hook).__name__} forward pre-hook"
                    f" (torch.nn.utils.{undo.removeprefix('remove_')}), which a bento cannot load without running"
                    f" code; bake it in before building with torch.nn.utils.{undo}({where}, {hook.name!r})"
                )
    unstorable = module_tensors.unstorable_state(module)
    if unstorable is not None:
        return (
            f"its state cannot be stored as tensors ({unstorable}); create it (quantize it, say) inside a"
            " function the handler calls once, or serve the module it was made from"
        )
    try:
        architecture = architecture_pickle(module)
    except Exception as exc:  # an attribute torch.save cannot pickle (a lambda, a file, a lock)
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return (
            f"its architecture cannot be saved without its tensors ({type(exc).__name__}: {reason}); keep"
            " functions and other state that is not tensors or plain values out of the module's attributes"
        )
    for qualified in torch.serialization.get_unsafe_globals_in_checkpoint(io.BytesIO(architecture)):
        if not qualified.startswith(_NOTEBOOK_PREFIX) and _torch_module_class(qualified) is None:
            return (
                f"it holds a {qualified}, which a bento cannot load without running code (it loads only torch"
                " module classes and the notebook's own classes); remove it from the module before building,"
                " or create the module inside a function the handler calls once"
            )
    return None


def _allowed_globals(checkpoint: Path, source_namespace: dict[str, Any]) -> list[Any]:
    """The classes an architecture pickle needs, if all are torch modules or classes of the bento's own.

    Only classes: a function named here (``torch.utils.cpp_extension.load_inline``...) would run on load.
    """
    import torch

    allowed: list[Any] = []
    for qualified in torch.serialization.get_unsafe_globals_in_checkpoint(str(checkpoint)):
        found: Any = None
        if qualified.startswith(_NOTEBOOK_PREFIX):
            found = source_namespace.get(qualified[len(_NOTEBOOK_PREFIX) :])
            found = (found, qualified) if isinstance(found, type) else None
        elif qualified.startswith("torch."):
            found = _torch_module_class(qualified)
        if found is None:
            raise BentoIntegrityError(
                f"{checkpoint.name} refers to {qualified}, which is neither a torch module class nor a class "
                "defined in the bento"
            )
        allowed.append(found)
    return allowed


def load_object(entry: ModelEntry, paths: list[Path], source_namespace: dict[str, Any]) -> Any:
    """Rebuild one stored object from its (already verified) ``paths``; ``source_namespace`` holds the
    bento's own classes."""
    kind = entry.kind
    expected = {"torch": 2, "numpy": 1, "pickle": 1}.get(kind)
    if expected is None:
        raise BentoIntegrityError(f"unknown object kind {kind!r} for {entry.name}")
    if len(paths) != expected:
        raise BentoIntegrityError(f"{entry.name}: a {kind} object has {expected} file(s), not {len(paths)}")
    if kind == "torch":
        import torch

        weights, architecture = paths
        with torch.serialization.safe_globals(_allowed_globals(architecture, source_namespace)):
            module = torch.load(architecture, weights_only=True)
        if not isinstance(module, torch.nn.Module):
            raise BentoIntegrityError(f"{architecture.name} does not hold a torch module")
        module_tensors.load_tensors(module, weights)
        if (entry.device or "cpu").startswith("cuda") and torch.cuda.is_available():
            module = module.to(entry.device)
        return module
    if kind == "numpy":
        return np.load(paths[0], allow_pickle=False)
    with paths[0].open("rb") as handle:
        return pickling.load(handle, source_namespace)
