"""E_an, the event anonymizer (Ahmad, Morerio, Del Bue, "Person Re-Identification without
Identification via Event Anonymization", ICCV 2023).

A fully convolutional network on a voxel grid ``(N, B=5, H, W) -> (N, 5, H, W)``, run by the camera
node on full frames, so any H, W works.

``anonymizer_paper`` is the paper's network, layer for layer::

    conv3x3 5->64 (pad 1)  ReLU  maxpool 2 stride 1     H -> H -> H-1
    conv3x3 64->16 (pad 1) ReLU  maxpool 2 stride 1     H-1 -> H-1 -> H-2
    conv3x3 16->64 (pad 1) ReLU                         H-2
    conv3x3 64->5 (pad 2)  sigmoid                      H-2 + 2*2 - 3 + 1 = H

Each 2x2 max-pool at stride 1 loses one row and column, and the last convolution's padding of 2
gives both back, so the output has the input's H and W (tested for odd and even sizes).

Value ranges. Input voxels are normalised to mean 0 / std 1 over their non-zero cells (negative and
positive values). The paper's sigmoid puts its output in (0, 1) (``cfg.output_range == "unit"``).
This project handles that one way everywhere:
  * the anonymized voxel is emitted in its model's own range, and every network downstream of E_an
    (E_reid in the joint stage, the inversion and adaptive attackers) is trained on exactly that;
  * the utility term compares like with like in the unit range: ``1 - SSIM(unit(E_an(X)), sigmoid(X))``
    where :func:`to_unit` is the identity for a unit-range model and a sigmoid for a voxel-range one,
    so a paper model whose last conv reproduces X scores SSIM 1;
  * the frozen attacker E_rec, trained on voxel-range raw events, receives :func:`to_voxel_range`
    of the anonymized voxel (the logit of a unit-range output, which inverts the paper's fixed
    sigmoid), so a privacy gain can never come from a mere range mismatch the attacker could undo.

``anonymizer_resunet`` is this project's variant: a small U-shaped network (two stride-2 levels,
residual blocks at 1/4 scale, sum skips) whose output is the input plus a learned residual, soft-
clamped into the voxel range (``s * tanh((X + r) / s)``, s = 5), with the residual head initialised to
zero. Why it should trade privacy for utility better than the paper's network:
  1. it starts at the identity (perfect utility, SSIM(E_an(X), X) ~ 1, ReId as good as on raw events)
     and the privacy term moves it away only where that hurts the attacker, instead of starting from
     a random squashing that destroys both;
  2. its receptive field (~40 px instead of the paper's ~9 px) lets it perturb the spatial structure
     an E2VID attacker integrates into texture (faces, clothing patterns), not only per-pixel values,
     while the silhouette and motion that ReId needs survive in the identity path;
  3. its output stays in the voxel range, so E_reid and the attackers see the same statistics as raw
     events and the measured privacy is not an artefact of a change of scale.
The evidence is the training runs (docs/results), not this argument. Its cost per pixel is similar
(~33 k multiply-adds/pixel against the paper's ~24 k).

``anonymizer_noisy`` makes anonymization stochastic, in the style of AnonyNoise (Bendig et al.,
"AnonyNoise: Anonymizing Event Data with Smart Noise to Outsmart Re-Identification and Preserve
Privacy", WACV 2025): the network sees the voxel *and* a fresh standard-normal draw ``n`` of its
shape, and emits ``X + r(X, n) + s(X, n) * n`` (soft-clamped like the residual U-net), where ``s`` is a
learned per-pixel, per-bin noise scale, never below ``min_noise``. A fresh ``n`` is drawn at every call,
in training *and* in eval mode: that is intended, so the anonymized stream is never a deterministic,
invertible filter of the events (two calls on the same window differ; an attacker that inverts E_an
can at best recover what survives the noise). Pass ``noise=`` to :meth:`NoisyAnonymizer.forward` for a
reproducible draw (tests), or seed torch. The residual head starts at zero and the scale at
``noise_init``, so training starts from "raw events plus noise" and learns where noise hides identity
and where ReId needs the signal.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from anonreid.models.layers import ConvLayer, SmallUNet
from anonreid.models.registry import ModelCfg, register_model

_EPS = 1e-4


def to_unit(y: torch.Tensor, output_range: str) -> torch.Tensor:
    """An anonymizer output (or a raw voxel, range ``voxel``) mapped into (0, 1) for SSIM."""
    return y if output_range == "unit" else torch.sigmoid(y)


def to_voxel_range(y: torch.Tensor, output_range: str) -> torch.Tensor:
    """An anonymizer output mapped into the voxel range a raw-trained attacker expects (differentiable)."""
    return torch.logit(y.clamp(_EPS, 1 - _EPS)) if output_range == "unit" else y


def attacker_input(y: torch.Tensor, cfg: ModelCfg) -> torch.Tensor:
    """What a raw-trained E_rec is fed for anonymizer output ``y`` (see the module docstring)."""
    return to_voxel_range(y, cfg.output_range)


# ---------------------------------------------------------------------------------------------- models


class PaperAnonymizer(nn.Module):
    """The ICCV 2023 anonymizer, exactly (see the module docstring for the size arithmetic)."""

    def __init__(self, in_bins: int = 5) -> None:
        super().__init__()
        self.conventions = {"in_bins": in_bins, "out_channels": in_bins, "output_range": "unit"}
        self.encoder = nn.Sequential(
            nn.Conv2d(in_bins, 64, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2, stride=1),
            nn.Conv2d(64, 16, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2, stride=1),
        )
        self.decoder = nn.Sequential(
            nn.Conv2d(16, 64, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(64, in_bins, 3, padding=2),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class ResUNetAnonymizer(nn.Module):
    """Identity-initialised residual U-net anonymizer with voxel-range output (this project's variant)."""

    def __init__(self, in_bins: int = 5, base: int = 32, num_res: int = 2, clamp: float = 5.0) -> None:
        super().__init__()
        self.conventions = {"in_bins": in_bins, "out_channels": in_bins, "output_range": "voxel"}
        self.clamp = clamp
        self.trunk = SmallUNet(in_bins, base, 2 * base, num_res)
        self.out = ConvLayer(base, base, 3)
        self.head = nn.Conv2d(base, in_bins, 3, padding=1)
        nn.init.zeros_(self.head.weight)
        assert self.head.bias is not None
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.head(self.out(self.trunk(x)))
        return self.clamp * torch.tanh((x + residual) / self.clamp)


class NoisyAnonymizer(nn.Module):
    """Stochastic anonymizer: learned per-pixel noise scale on fresh noise at every call (see the module
    docstring); voxel-range output."""

    def __init__(self, in_bins: int = 5, base: int = 32, num_res: int = 2, clamp: float = 5.0,
                 noise_init: float = 0.5, min_noise: float = 0.1) -> None:
        super().__init__()
        if not 0 <= min_noise < noise_init:
            raise ValueError(f"need 0 <= min_noise < noise_init, got {min_noise} and {noise_init}")
        self.conventions = {"in_bins": in_bins, "out_channels": in_bins, "output_range": "voxel"}
        self.clamp, self.min_noise = clamp, min_noise
        self.trunk = SmallUNet(2 * in_bins, base, 2 * base, num_res)
        self.out = ConvLayer(base, base, 3)
        self.residual = nn.Conv2d(base, in_bins, 3, padding=1)
        self.scale = nn.Conv2d(base, in_bins, 3, padding=1)
        for conv in (self.residual, self.scale):
            nn.init.zeros_(conv.weight)
            assert conv.bias is not None
            nn.init.zeros_(conv.bias)
        assert self.scale.bias is not None
        nn.init.constant_(self.scale.bias, math.log(math.expm1(noise_init - min_noise)))  # softplus^-1

    def heads(self, x: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The residual ``r(X, n)`` and the noise scale ``s(X, n) >= min_noise``."""
        f = self.out(self.trunk(torch.cat([x, noise], 1)))
        return self.residual(f), self.min_noise + F.softplus(self.scale(f))

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        n = torch.randn_like(x) if noise is None else noise
        residual, scale = self.heads(x, n)
        return self.clamp * torch.tanh((x + residual + scale * n) / self.clamp)


# --------------------------------------------------------------------------------------------- builders


@register_model("anonymizer_paper", family="anonymizer")
def anonymizer_paper(in_bins: int = 5) -> nn.Module:
    """The paper's E_an (sigmoid output in (0, 1))."""
    return PaperAnonymizer(in_bins)


@register_model("anonymizer_resunet", family="anonymizer")
def anonymizer_resunet(in_bins: int = 5, base: int = 32, num_res: int = 2, clamp: float = 5.0) -> nn.Module:
    """This project's identity-initialised residual U-net E_an (voxel-range output)."""
    return ResUNetAnonymizer(in_bins, base, num_res, clamp)


@register_model("anonymizer_noisy", family="anonymizer")
def anonymizer_noisy(in_bins: int = 5, base: int = 32, num_res: int = 2, clamp: float = 5.0,
                     noise_init: float = 0.5, min_noise: float = 0.1) -> nn.Module:
    """Stochastic E_an (AnonyNoise-style learned noise, fresh at every call; voxel-range output)."""
    return NoisyAnonymizer(in_bins, base, num_res, clamp, noise_init, min_noise)
