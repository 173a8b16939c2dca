"""Building blocks shared by the model families: conv layers, residual blocks, recurrent cells.

The recurrent cells follow E2VID (Rebecq et al., TPAMI 2019, github.com/uzh-rpg/rpg_e2vid) and
FireNet (Scheerlinck et al., WACV 2020): a ConvLSTM whose gates come from one convolution over
``[input, hidden]``, and a ConvGRU. States are plain tensors (or tuples of them) so a caller can carry
them across windows of a stream and detach them for truncated back-propagation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ChannelAffine(nn.Module):
    """A fixed per-channel affine ``x * scale + shift`` (buffers, saved with the weights, not trained).

    An attacker on anonymized events fits it once before training (:func:`fit_channel_affine`) so that
    each input channel has the mean and spread of the raw voxels: an anonymizer whose output is the raw
    signal under large per-channel offsets or gains (a min–max E_an can learn exactly that) then
    neither saturates the attacker's first layer nor passes for privacy. Identity until fitted.
    """

    scale: torch.Tensor
    shift: torch.Tensor

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.register_buffer("scale", torch.ones(channels, 1, 1))
        self.register_buffer("shift", torch.zeros(channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.shift


def channel_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation of each channel (dim -3) over every other dimension, as ``(C, 1, 1)``."""
    dims = tuple(d for d in range(x.dim()) if d != x.dim() - 3)
    return x.mean(dims).view(-1, 1, 1), x.std(dims).view(-1, 1, 1)


#: what an attacker's input channels are standardised to: voxels (their :func:`channel_stats` are taken),
#: or those statistics themselves (``(mean, std)``, each of ``C`` values)
Target = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


def _target_stats(target: Target) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(target, torch.Tensor):
        return channel_stats(target)
    mean, std = target
    return torch.as_tensor(mean, dtype=torch.float32).view(-1, 1, 1), torch.as_tensor(std, dtype=torch.float32).view(-1, 1, 1)


def _affine_to(inputs: torch.Tensor, target: Target, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(scale, shift)`` that give each channel of ``inputs`` the mean and spread of ``target``'s."""
    (mu_in, sd_in), (mu_t, sd_t) = channel_stats(inputs), _target_stats(target)
    mu_t, sd_t = mu_t.to(inputs), sd_t.to(inputs)
    scale = sd_t / sd_in.clamp_min(eps)
    return scale, mu_t - mu_in * scale


@torch.no_grad()
def fit_channel_affine(affine: ChannelAffine, inputs: torch.Tensor, target: Target, eps: float = 1e-6) -> dict[str, list[float]]:
    """Set ``affine`` so that ``inputs`` (..., C, H, W) get the per-channel mean and std of ``target``
    (voxels, or their ``(mean, std)`` as recorded by an earlier fit); returns what was fitted (for the
    checkpoint's metadata: ``target_mean`` / ``target_std`` are what a later fit can be given)."""
    scale, shift = _affine_to(inputs, target, eps)
    affine.scale.copy_(scale)
    affine.shift.copy_(shift)
    (mu_in, sd_in), (mu_t, sd_t) = channel_stats(inputs), _target_stats(target)
    return {"input_mean": mu_in.flatten().tolist(), "input_std": sd_in.flatten().tolist(),
            "target_mean": mu_t.flatten().tolist(), "target_std": sd_t.flatten().tolist()}


def standardise_like(x: torch.Tensor, ref: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """``x`` with each channel (dim -3) given the mean and spread of ``ref``'s, over the whole batch
    (differentiable in ``x``): the batch form of :class:`ChannelAffine`, for attackers trained in the loop."""
    scale, shift = _affine_to(x, ref.detach(), eps)
    return x * scale + shift


class ConvLayer(nn.Sequential):
    """Conv2d + optional BatchNorm + ReLU, 'same' padding for odd kernels at stride 1."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, norm: bool = False) -> None:
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=not norm)]
        if norm:
            layers.append(nn.BatchNorm2d(cout))
        layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with an identity shortcut (E2VID's bottleneck residual blocks)."""

    def __init__(self, channels: int, norm: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, 1, 1, bias=not norm)
        self.bn1: nn.Module = nn.BatchNorm2d(channels) if norm else nn.Identity()
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=not norm)
        self.bn2: nn.Module = nn.BatchNorm2d(channels) if norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(x + self.bn2(self.conv2(out)))


class UpsampleConv(nn.Module):
    """Bilinear x2 upsampling to a target size, then a conv layer (avoids transposed-conv checkerboards)."""

    def __init__(self, cin: int, cout: int, kernel: int = 5) -> None:
        super().__init__()
        self.conv = ConvLayer(cin, cout, kernel)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return self.conv(F.interpolate(x, size=size, mode="bilinear", align_corners=False))


class SmallUNet(nn.Module):
    """A two-level U: 3x3 stem, two stride-2 conv levels (``base -> 2 base -> mid``), residual blocks at
    1/4 scale, bilinear upsampling with sum skips back to ``base`` channels at the input resolution.
    The shared trunk of the residual anonymizer and the inversion attacker (heads differ)."""

    def __init__(self, cin: int, base: int, mid: int, num_res: int) -> None:
        super().__init__()
        #: an input whose sides are multiples of this is halved exactly at both levels (a tile of a frame
        #: aligned to it sees the frame's own sampling grid: nodes/adversary/tiles.py)
        self.multiple = 4
        self.inc = ConvLayer(cin, base, 3)
        self.down1 = ConvLayer(base, 2 * base, 3, stride=2)
        self.down2 = ConvLayer(2 * base, mid, 3, stride=2)
        self.res = nn.Sequential(*[ResidualBlock(mid) for _ in range(num_res)])
        self.up2 = ConvLayer(mid, 2 * base, 3)
        self.up1 = ConvLayer(2 * base, base, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f0 = self.inc(x)
        f1 = self.down1(f0)
        f2 = self.res(self.down2(f1))
        u1 = self.up2(F.interpolate(f2, size=f1.shape[-2:], mode="bilinear", align_corners=False)) + f1
        return self.up1(F.interpolate(u1, size=f0.shape[-2:], mode="bilinear", align_corners=False)) + f0


LSTMState = tuple[torch.Tensor, torch.Tensor]


class ConvLSTM(nn.Module):
    """Convolutional LSTM cell: gates = conv([x, h]); returns the new (h, c)."""

    def __init__(self, cin: int, hidden: int, kernel: int = 3) -> None:
        super().__init__()
        self.hidden = hidden
        self.gates = nn.Conv2d(cin + hidden, 4 * hidden, kernel, 1, kernel // 2)

    def forward(self, x: torch.Tensor, state: LSTMState | None) -> LSTMState:
        if state is None:
            zeros = x.new_zeros(x.shape[0], self.hidden, x.shape[2], x.shape[3])
            state = (zeros, zeros)
        h, c = state
        i, f, o, g = self.gates(torch.cat([x, h], dim=1)).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c


class ConvGRU(nn.Module):
    """Convolutional GRU cell (FireNet's recurrent unit); returns the new hidden state."""

    def __init__(self, cin: int, hidden: int, kernel: int = 3) -> None:
        super().__init__()
        self.hidden = hidden
        self.reset_update = nn.Conv2d(cin + hidden, 2 * hidden, kernel, 1, kernel // 2)
        self.candidate = nn.Conv2d(cin + hidden, hidden, kernel, 1, kernel // 2)

    def forward(self, x: torch.Tensor, state: torch.Tensor | None) -> torch.Tensor:
        if state is None:
            state = x.new_zeros(x.shape[0], self.hidden, x.shape[2], x.shape[3])
        r, z = torch.sigmoid(self.reset_update(torch.cat([x, state], dim=1))).chunk(2, dim=1)
        n = torch.tanh(self.candidate(torch.cat([x, r * state], dim=1)))
        return (1 - z) * state + z * n


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Zero-pad H and W up to a multiple (an empty voxel is zero); returns the padded tensor and (H, W)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph))
    return x, (h, w)
