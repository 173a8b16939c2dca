"""E_reid, the person re-identification network on event voxel crops.

The strong ReId baseline of Luo et al. ("Bag of Tricks and A Strong Baseline for Deep Person
Re-identification", CVPRW 2019), as the ICCV 2023 event-anonymization paper uses it: a ResNet
(torchvision's layout and parameter names, :mod:`anonreid.models.resnet`) with

  * a first convolution taking B = 5 voxel bins; with user-supplied ImageNet weights (a local
    ``.pth`` of a torchvision state dict; nothing is downloaded) its 5 input channels start from the
    mean of the 3 RGB filters scaled by 3/5, so the response to a uniform input is unchanged;
  * last stride 1 (layer4 keeps 1/16 resolution: 384x192 -> 24x12 feature map);
  * global average pooling -> linear 256-d embedding -> BNNeck (BatchNorm1d, bias frozen) ->
    bias-free classifier. The triplet loss sees the pre-BN embedding, cross-entropy the logits.

``forward`` returns ``ReidOutput(logits, features)`` in training mode and the L2-normalised post-BN
256-d embedding in eval mode, which is what the camera node publishes and the gallery indexes. With
``flip_test`` (a builder argument, so the checkpoint records it and every consumer embeds alike) the
eval-mode embedding is that of the mean post-BN feature of the crop and its horizontal mirror (flip
test-time augmentation as fast-reid's ``TEST.FLIP``), both run as one batch.

Losses (label-smoothing cross-entropy + batch-hard triplet) are in :mod:`anonreid.models.losses`;
:func:`reid_loss` combines them. The paper's reference code fed ``argmax`` indices to the
cross-entropy in its triplet branch; here cross-entropy only ever receives logits and integer labels.
:class:`PKSampler` draws P identities x K samples per batch (identity-balanced, reshuffled per epoch
from a seeded generator; the reference loader never shuffled).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from anonreid.models.losses import batch_hard_triplet, label_smoothing_ce
from anonreid.models.registry import register_model
from anonreid.models.resnet import BasicBlock, Bottleneck, ResNet, resnet


class ReidOutput(NamedTuple):
    logits: torch.Tensor  # (N, num_classes)
    features: torch.Tensor  # (N, embed_dim), before the BNNeck


# ----------------------------------------------------------------------------------------------- blocks


def inflate_first_conv(weight: torch.Tensor, in_bins: int) -> torch.Tensor:
    """(C, 3, k, k) RGB filters -> (C, in_bins, k, k): mean over RGB, repeated, scaled by 3/in_bins."""
    mean = weight.mean(dim=1, keepdim=True)
    return mean.repeat(1, in_bins, 1, 1) * (3.0 / in_bins)


def _set_last_stride_one(backbone: ResNet) -> None:
    block = backbone.layer4[0]
    assert isinstance(block, BasicBlock | Bottleneck)
    shortcut = [] if block.downsample is None else [block.downsample[0]]
    for conv in (block.conv1, block.conv2, *shortcut):  # the 3x3 of a bottleneck holds its stride
        assert isinstance(conv, nn.Conv2d)
        conv.stride = (1, 1)


# ------------------------------------------------------------------------------------------------ model


class ReidNet(nn.Module):
    """ResNet trunk (5-channel stem, last stride 1) + 256-d BNNeck + classifier."""

    def __init__(
        self,
        depth: int,
        in_bins: int,
        embed_dim: int,
        num_classes: int,
        crop_hw: tuple[int, int],
        pretrained: str | None,
        flip_test: bool = False,
    ) -> None:
        super().__init__()
        self.flip_test = flip_test
        self.conventions = {
            "in_bins": in_bins,
            "out_channels": embed_dim,
            "embed_dim": embed_dim,
            "input_hw": tuple(crop_hw),
            "output_range": "unit",
        }
        backbone = resnet(depth)
        if pretrained:
            state = torch.load(Path(pretrained), map_location="cpu", weights_only=True)
            missing = [k for k in ("conv1.weight", "layer4.0.conv1.weight") if k not in state]
            if missing:
                raise ValueError(f"{pretrained}: not a torchvision ResNet-{depth} state dict (missing {missing})")
            state = {k: v for k, v in state.items() if not k.startswith("fc.")}
            state["conv1.weight"] = inflate_first_conv(state["conv1.weight"], in_bins)
            backbone.conv1 = nn.Conv2d(in_bins, 64, 7, 2, 3, bias=False)
            backbone.load_state_dict(state, strict=False)
        else:
            backbone.conv1 = nn.Conv2d(in_bins, 64, 7, 2, 3, bias=False)
            nn.init.kaiming_normal_(backbone.conv1.weight, mode="fan_out", nonlinearity="relu")
        _set_last_stride_one(backbone)
        feat_dim = backbone.fc.in_features
        backbone.fc = nn.Identity()  # type: ignore[assignment]
        self.backbone = backbone
        self.embed = nn.Linear(feat_dim, embed_dim)
        self.bnneck = nn.BatchNorm1d(embed_dim)
        self.bnneck.bias.requires_grad_(False)
        self.classifier = nn.Linear(embed_dim, max(num_classes, 1), bias=False)
        nn.init.normal_(self.classifier.weight, std=0.001)

    def forward(self, x: torch.Tensor) -> ReidOutput | torch.Tensor:
        if self.training:
            feat = self.embed(self.backbone(x))
            return ReidOutput(self.classifier(self.bnneck(feat)), feat)
        if self.flip_test:
            neck = self.bnneck(self.embed(self.backbone(torch.cat([x, x.flip(-1)]))))
            return F.normalize(neck[: len(x)] + neck[len(x) :], dim=1)
        return F.normalize(self.bnneck(self.embed(self.backbone(x))), dim=1)


def reid_loss(
    out: ReidOutput, labels: torch.Tensor, smoothing: float = 0.1, margin: float = 0.3
) -> tuple[torch.Tensor, dict[str, float]]:
    """L_reid = label-smoothing CE(logits, labels) + batch-hard triplet(pre-BN features, labels)."""
    ce = label_smoothing_ce(out.logits, labels, smoothing)
    tri = batch_hard_triplet(out.features, labels, margin)
    return ce + tri, {"ce": float(ce.detach()), "triplet": float(tri.detach())}


class PKSampler:
    """Identity-balanced batches: P identities x K samples each (with replacement when fewer than K).

    ``labels`` gives the identity of each dataset index. Batches are drawn from a
    ``np.random.Generator`` seeded per epoch, so runs are reproducible and every epoch reshuffles.
    """

    def __init__(self, labels: Sequence[int] | np.ndarray, p: int, k: int, seed: int = 0) -> None:
        labels = np.asarray(labels)
        self.by_id = {int(i): np.flatnonzero(labels == i) for i in np.unique(labels)}
        if len(self.by_id) < 2:
            raise ValueError(f"P x K sampling needs at least 2 identities, got {len(self.by_id)}")
        self.p, self.k, self.seed = min(p, len(self.by_id)), k, seed
        self.epoch = 0

    def __len__(self) -> int:
        n = sum(len(v) for v in self.by_id.values())
        return max(1, n // (self.p * self.k))

    def batches(self, epoch: int) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, epoch])
        ids = list(self.by_id)
        out = []
        for _ in range(len(self)):
            chosen = rng.choice(ids, size=self.p, replace=False)
            batch: list[int] = []
            for i in chosen:
                pool = self.by_id[int(i)]
                batch.extend(int(j) for j in rng.choice(pool, size=self.k, replace=len(pool) < self.k))
            out.append(batch)
        return out

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.batches(self.epoch)
        self.epoch += 1


# --------------------------------------------------------------------------------------------- builders


@register_model("reid_resnet50", family="reid")
def reid_resnet50(
    in_bins: int = 5,
    embed_dim: int = 256,
    num_classes: int = 22,
    crop_hw: tuple[int, int] = (384, 192),
    pretrained: str | None = None,
    flip_test: bool = False,
) -> nn.Module:
    """The paper's E_reid: ResNet-50, 384x192 crops."""
    return ReidNet(50, in_bins, embed_dim, num_classes, crop_hw, pretrained, flip_test)


@register_model("reid_resnet18", family="reid")
def reid_resnet18(
    in_bins: int = 5,
    embed_dim: int = 256,
    num_classes: int = 22,
    crop_hw: tuple[int, int] = (128, 64),
    pretrained: str | None = None,
    flip_test: bool = False,
) -> nn.Module:
    """The CPU-sized E_reid: ResNet-18, 128x64 crops."""
    return ReidNet(18, in_bins, embed_dim, num_classes, crop_hw, pretrained, flip_test)
