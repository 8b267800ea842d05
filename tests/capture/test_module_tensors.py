"""A torch module in a bento holds every tensor the kernel's held: non-persistent buffers (HuggingFace's
``inv_freq``) and tied weights included, tied ones still one object."""

from __future__ import annotations

import pytest

from tests.capture.test_slicer import bento_of, run, shell  # noqa: F401 (fixture)

torch = pytest.importorskip("torch")

NETS = {
    "non-persistent-buffer": (
        "import torch\nfrom torch import nn\n"
        "class Net(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.register_buffer('inv_freq', torch.arange(1.0, 4.0), persistent=False)\n"
        "        self.register_buffer('kept', torch.full((3,), 0.5))\n"
        "        self.lin = nn.Linear(3, 3)\n"
        "    def forward(self, x):\n"
        "        return self.lin(x * self.inv_freq) + self.kept\n"
        "net = Net().eval()"
    ),
    "tied-weights": (
        "import torch\nfrom torch import nn\n"
        "class Net(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.emb = nn.Embedding(5, 3)\n"
        "        self.head = nn.Linear(3, 5, bias=False)\n"
        "        self.head.weight = self.emb.weight\n"
        "    def forward(self, x):\n"
        "        return self.head(self.emb(x.long()).sum(0))\n"
        "net = Net().eval()"
    ),
    "shared-submodule-and-buffer": (
        "import torch\nfrom torch import nn\n"
        "class Net(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.a = nn.Linear(3, 3)\n"
        "        self.b = self.a\n"
        "        self.register_buffer('scale', torch.tensor([2.0, 3.0, 4.0]), persistent=False)\n"
        "        self.inner = nn.Module()\n"
        "        self.inner.register_buffer('scale', self.scale, persistent=False)\n"
        "    def forward(self, x):\n"
        "        return self.b(self.a(x)) * self.inner.scale\n"
        "net = Net().eval()"
    ),
}


def _slots(module) -> dict[str, object]:
    return dict(module.named_parameters(remove_duplicate=False)) | dict(module.named_buffers(remove_duplicate=False))


@pytest.mark.parametrize("case", sorted(NETS))
def test_the_bentos_module_holds_every_tensor_of_the_kernels_and_ties_them_alike(shell, tmp_path, case):  # noqa: F811
    run(
        shell,
        NETS[case],
        "def handler(v: list) -> list:\n    with torch.no_grad():\n        return net(torch.tensor(v)).tolist()",
    )
    source, loaded = bento_of(shell, tmp_path)
    kernel_net = shell.user_ns["net"]
    bento_net = loaded.__globals__["net"]
    kernel, bento = _slots(kernel_net), _slots(bento_net)
    assert kernel.keys() == bento.keys(), source
    for name, tensor in kernel.items():
        assert type(bento[name]) is type(tensor) and torch.equal(bento[name], tensor), name
    same_kernel = {(a, b) for a in kernel for b in kernel if kernel[a] is kernel[b]}
    same_bento = {(a, b) for a in bento for b in bento if bento[a] is bento[b]}
    assert same_bento == same_kernel
    assert loaded([1.0, 2.0, 3.0]) == shell.user_ns["handler"]([1.0, 2.0, 3.0])
