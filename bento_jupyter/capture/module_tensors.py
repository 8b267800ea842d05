"""A torch module's full tensor state in one safetensors file, restored exactly.

``state_dict`` leaves out non-persistent buffers (HuggingFace's ``inv_freq``) and a strict load
refuses tied weights stored once; here every named parameter and buffer is written, each tensor
object once under its first name, and the file's metadata maps every name to the key holding it.
Loading puts the very same tensor object at every name that shared one in the kernel.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bento_jupyter.errors import BentoIntegrityError

_NAMES_KEY = "bento_jupyter.tensor_names"


def named_tensors(module: Any) -> Iterator[tuple[str, str, Any]]:
    """``(name, "parameter"|"buffer", tensor)`` for every tensor slot, shared ones at each of their names."""
    for name, param in module.named_parameters(remove_duplicate=False):
        yield name, "parameter", param
    for name, buffer in module.named_buffers(remove_duplicate=False):
        yield name, "buffer", buffer


def unstorable_state(module: Any) -> str | None:
    """What of ``module``'s state this file cannot hold as it is (a quantized module's packed parameters, a
    tensor subclass), or None when every entry of its state is a plain tensor among its named ones."""
    import torch

    slots = {name: tensor for name, _, tensor in named_tensors(module)}
    for name, value in module.state_dict(keep_vars=True).items():
        if not isinstance(value, torch.Tensor):
            return f"{name!r} is a {type(value).__qualname__}, not a tensor"
        if type(value) not in (torch.Tensor, torch.nn.Parameter) or value.is_quantized:
            return f"{name!r} is a {type(value).__qualname__} safetensors cannot store"
        if name not in slots:
            return f"{name!r} is saved by the module's own state_dict code, not held as a parameter or buffer"
    for name, tensor in slots.items():
        if type(tensor) not in (torch.Tensor, torch.nn.Parameter) or tensor.is_quantized:
            return f"{name!r} is a {type(tensor).__qualname__} safetensors cannot store"
    return None


def save_tensors(module: Any, path: Path) -> None:
    """Write every tensor of ``module`` to ``path``: one entry per tensor object, all names in the metadata."""
    from safetensors.torch import save_file

    keys: dict[int, str] = {}  # id(tensor) -> the key it is stored under
    names: dict[str, str] = {}
    storages: set[tuple[int, str]] = set()
    tensors: dict[str, Any] = {}
    for name, _, tensor in named_tensors(module):
        if id(tensor) not in keys:
            keys[id(tensor)] = name
            data = tensor.detach().to("cpu").contiguous()
            storage = (data.untyped_storage().data_ptr(), str(data.device))
            # views of one storage (not the same tensor object) are stored as copies of their own
            tensors[name] = data.clone() if storage in storages else data
            storages.add(storage)
        names[name] = keys[id(tensor)]
    save_file(tensors, str(path), metadata={_NAMES_KEY: json.dumps(names)})


def load_tensors(module: Any, path: Path) -> None:
    """Replace the (meta-device) tensors of ``module`` with those in ``path``, restoring shared ones as shared.

    Raises BentoIntegrityError when the file and the module do not name the same tensors and shapes.
    """
    import torch
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
        if _NAMES_KEY not in metadata:
            raise BentoIntegrityError(f"{path.name} does not list the names of its tensors")
        names: dict[str, str] = json.loads(metadata[_NAMES_KEY])
        slots = list(named_tensors(module))
        if {name for name, _, _ in slots} != set(names):
            raise BentoIntegrityError(f"{path.name} does not hold the tensors of its module's architecture")
        restored: dict[str, Any] = {}
        for name, role, meta in slots:
            key = names[name]
            if key not in restored:
                data = handle.get_tensor(key)
                if data.shape != meta.shape or data.dtype != meta.dtype:
                    raise BentoIntegrityError(f"{path.name}: {key} does not match its module's architecture")
                if role == "parameter":
                    data = torch.nn.Parameter(data, requires_grad=meta.requires_grad)
                restored[key] = data
            owner_path, _, attr = name.rpartition(".")
            owner = module.get_submodule(owner_path)
            slot = owner._parameters if role == "parameter" else owner._buffers
            slot[attr] = restored[key]
