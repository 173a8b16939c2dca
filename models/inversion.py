"""Inversion attackers: networks that undo the anonymizer (the ICCV 2023 paper's Sec. 5.4 / Table 6, made
strong), each feeding the raw-trained E_rec: the attack's frames are ``E_rec(E_inv(E_an(X)))``.

* ``inversion_residual`` (stage ``inv``, :mod:`anonreid.models.train_attacks`): a U-shaped conv net
  whose output is a base estimate of the raw voxels plus a learned residual with a zero-initialised
  head. The base is either E_an's output mapped into the voxel range (``to_voxel_range``, the logit of
  a unit-range anonymizer), or, with ``linear_kernel`` > 0, a ``linear_inverse`` the training starts
  from the run's closed-form fit (``inv.init=linear``, the default). It is trained *end to end through
  the frozen raw E_rec*: the loss is on the frames E_rec makes of its output (L1 + 1 - SSIM against
  the reference frames, on the person region) and on the retrieval attacker's appearance embedding of
  the person, not on voxels. So it starts as the linear floor (or as the plain "E_rec on anonymized
  events" attack) and can only learn to do better. The earlier voxel-L1 E_inv collapsed to ~zeros
  (raw voxels are ~96 % zeros) and reconstructed flat grey; so did one started from E_an's output with
  its frame loss on the whole tile (the 40th session's).
* ``inversion``: the earlier plain U-net (no skip, linear voxel-range head); kept so checkpoints made
  with it still load.
* ``linear_inverse`` (stage ``linear``): the closed-form floor. A ``k x k x B`` neighbourhood of
  ``to_voxel_range(E_an(X))`` maps linearly (plus a bias) to each bin of X, fitted by least squares
  with a small ridge (:func:`fit_linear_inverse`) on training identities. Any learned attack should
  beat it; one that does not is broken (:mod:`anonreid.models.evaluation.collapse`).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from anonreid.models.anonymizer import to_voxel_range
from anonreid.models.layers import ChannelAffine, SmallUNet
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


class ResidualInversionNet(nn.Module):
    """``z + head(trunk(z))``, the head initialised to zero, where ``z`` is ``to_voxel_range(a)`` (per
    channel standardised with ``input_affine``) or, with ``linear_kernel`` > 0, a :class:`LinearInverse`
    of ``a`` (its weights loaded from the closed-form fit before training)."""

    def __init__(self, in_bins: int = 5, base: int = 32, num_res: int = 2, input_range: str = "unit",
                 input_affine: bool = False, linear_kernel: int = 0) -> None:
        super().__init__()
        self.conventions = {"in_bins": in_bins, "out_channels": in_bins, "output_range": "voxel",
                            "input_range": input_range}
        self.input_range = input_range
        self.linear = LinearInverse(in_bins, linear_kernel, input_range) if linear_kernel > 0 else None
        self.input_affine = ChannelAffine(in_bins) if input_affine and self.linear is None else None
        self.trunk = SmallUNet(in_bins, base, 4 * base, num_res)
        self.head = nn.Conv2d(base, in_bins, 3, padding=1)
        nn.init.zeros_(self.head.weight)
        assert self.head.bias is not None
        nn.init.zeros_(self.head.bias)

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        if self.linear is not None:  # starts as the closed-form linear inverse (the floor)
            z = self.linear(a)
        else:
            z = to_voxel_range(a, self.input_range)
            if self.input_affine is not None:  # fitted by the inv stage: each channel gets the raw voxels' statistics
                z = self.input_affine(z)
        return z + self.head(self.trunk(z))


class LinearInverse(nn.Module):
    """One ``k x k`` convolution B -> B over ``to_voxel_range(a)``; its weights come from
    :func:`fit_linear_inverse` (closed form), not from gradient descent."""

    def __init__(self, in_bins: int = 5, kernel: int = 5, input_range: str = "unit") -> None:
        super().__init__()
        self.conventions = {"in_bins": in_bins, "out_channels": in_bins, "output_range": "voxel",
                            "input_range": input_range}
        self.input_range = input_range
        self.conv = nn.Conv2d(in_bins, in_bins, kernel, padding=kernel // 2)

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        return self.conv(to_voxel_range(a, self.input_range))


@torch.no_grad()
def fit_linear_inverse(
    model: LinearInverse, pairs: Iterable[tuple[torch.Tensor, torch.Tensor]], ridge: float = 1e-3
) -> dict[str, float]:
    """Least squares ``X ~ W * to_voxel_range(a) + b`` over every pixel of the ``(a, X)`` batches
    ``(N, B, H, W)`` (zero padding at the borders, as the convolution applies it), accumulated as normal
    equations in float64 and solved with a ridge of ``ridge`` x the mean diagonal (the bias is not
    penalised). Writes the solution into ``model.conv``; returns the fit's residual statistics."""
    conv = model.conv
    k, bins = conv.kernel_size[0], conv.in_channels
    dim = bins * k * k + 1
    ata = torch.zeros(dim, dim, dtype=torch.float64)
    aty = torch.zeros(dim, conv.out_channels, dtype=torch.float64)
    yty = torch.zeros(conv.out_channels, dtype=torch.float64)
    rows = 0
    for a, x in pairs:
        z = to_voxel_range(a.float(), model.input_range)
        cols = F.unfold(z, k, padding=k // 2)  # (N, B k k, H W), channel-major like conv.weight
        feats = torch.cat([cols, torch.ones_like(cols[:, :1])], 1).transpose(1, 2).reshape(-1, dim).double()
        target = x.float().flatten(2).transpose(1, 2).reshape(-1, conv.out_channels).double()
        ata += feats.T @ feats
        aty += feats.T @ target
        yty += (target * target).sum(0)
        rows += len(feats)
    if rows == 0:
        raise ValueError("fit_linear_inverse got no (anonymized, raw) pairs")
    reg = torch.eye(dim, dtype=torch.float64) * ridge * float(ata.diagonal().mean())
    reg[-1, -1] = 0.0
    sol = torch.linalg.solve(ata + reg, aty)  # (dim, out)
    conv.weight.copy_(sol[:-1].T.reshape(conv.weight.shape).float())
    assert conv.bias is not None
    conv.bias.copy_(sol[-1].float())
    sse = yty - 2 * (sol * aty).sum(0) + (sol * (ata @ sol)).sum(0)
    return {"pixels": float(rows), "rmse": float((sse.clamp_min(0).sum() / (rows * conv.out_channels)).sqrt()),
            "target_rms": float((yty.sum() / (rows * conv.out_channels)).sqrt())}


@register_model("inversion", family="inversion")
def inversion(in_bins: int = 5, base: int = 32, num_res: int = 2) -> nn.Module:
    """The plain inversion autoencoder (earlier E_inv; kept for its checkpoints)."""
    return InversionNet(in_bins, base, num_res)


@register_model("inversion_residual", family="inversion")
def inversion_residual(in_bins: int = 5, base: int = 32, num_res: int = 2, input_range: str = "unit",
                       input_affine: bool = False, linear_kernel: int = 0) -> nn.Module:
    """E_inv trained end to end through the frozen E_rec: a base (voxel range, or a linear inverse with
    ``linear_kernel`` > 0) + learned residual."""
    return ResidualInversionNet(in_bins, base, num_res, input_range, input_affine, linear_kernel)


@register_model("linear_inverse", family="inversion")
def linear_inverse(in_bins: int = 5, kernel: int = 5, input_range: str = "unit") -> nn.Module:
    """The closed-form linear inverse (the floor every attack must beat)."""
    return LinearInverse(in_bins, kernel, input_range)
