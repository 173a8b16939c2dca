"""E_inv, the inversion attacker (the ICCV 2023 paper's Sec. 5.4 / Table 6).

An attacker who can run the anonymizer (or observe pairs) trains a network to undo it:
anonymized voxel -> raw voxel, then feeds its output to the raw-trained E_rec. The network is a
small convolutional autoencoder with a U shape (two stride-2 levels, residual blocks, sum skips) and
a linear voxel-range output, trained with L1 on (E_an(X), X) pairs (stage 4 of ``anonreid train``).
Input is whatever E_an emits (unit or voxel range); output is in the voxel range.
"""

from __future__ import annotations

import torch
from torch import nn

from anonreid.models.layers import SmallUNet
from anonreid.models.registry import register_model


class InversionNet(nn.Module):
    """U-shaped conv autoencoder: anonymized (N, B, H, W) -> raw voxel estimate (N, B, H, W)."""

    def __init__(self, in_bins: int = 5, base: int = 32, num_res: int = 2) -> None:
        super().__init__()
        self.conventions = {"in_bins": in_bins, "out_channels": in_bins, "output_range": "voxel"}
        self.trunk = SmallUNet(in_bins, base, 4 * base, num_res)
        self.head = nn.Conv2d(base, in_bins, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x))


@register_model("inversion", family="inversion")
def inversion(in_bins: int = 5, base: int = 32, num_res: int = 2) -> nn.Module:
    """The inversion autoencoder."""
    return InversionNet(in_bins, base, num_res)
