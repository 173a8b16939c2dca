"""The project's ResNet trunk (models/resnet.py) is torchvision's: the same parameter names and shapes, the
same weights from one seed, the same outputs, and a torchvision state dict loads into it. Building a ReId
net no longer imports torchvision (its import costs every camera actor about 1.3 s of CPU)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from anonreid.models.resnet import resnet

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("depth", [18, 50])
def test_same_seed_same_weights_and_outputs_as_torchvision(depth: int) -> None:
    import torchvision

    torch.manual_seed(depth)
    theirs = {18: torchvision.models.resnet18, 50: torchvision.models.resnet50}[depth](weights=None)
    torch.manual_seed(depth)
    ours = resnet(depth)
    a, b = theirs.state_dict(), ours.state_dict()
    assert list(a) == list(b)  # names, in order
    for name in a:
        assert torch.equal(a[name], b[name]), name  # the random init drew in the same order
    x = torch.randn(2, 3, 64, 32, generator=torch.Generator().manual_seed(1))
    for mode in (False, True):  # eval: running statistics; train: batch statistics (and their update)
        theirs.train(mode), ours.train(mode)
        assert torch.equal(theirs(x), ours(x)), mode
    assert all(torch.equal(a[n], b[n]) for n in a)  # the running statistics moved alike


def test_a_torchvision_state_dict_loads_and_a_bad_depth_is_named() -> None:
    import torchvision

    state = torchvision.models.resnet50(weights=None).state_dict()
    ours = resnet(50)
    ours.load_state_dict(state)  # strict: every key, every shape
    with pytest.raises(ValueError, match="depth 34"):
        resnet(34)


def test_building_a_reid_net_imports_no_torchvision() -> None:
    code = ("import sys; from anonreid.models.registry import create_model; "
            "create_model('reid_resnet18', in_bins=5, embed_dim=32, num_classes=3); "
            "assert 'torchvision' not in sys.modules, 'torchvision imported'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
