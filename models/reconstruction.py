"""E_rec, the reconstruction attacker: events -> intensity frames.

* ``e2vid``: the recurrent UNet of E2VID (Rebecq, Ranftl, Koltun, Scaramuzza, "High Speed and High
  Dynamic Range Video with an Event Camera", TPAMI 2019): a 5x5 head conv to 32 channels, 3 recurrent
  encoders (stride-2 conv + ConvLSTM, 32 -> 64 -> 128 -> 256), 2 residual blocks, 3 decoders
  (bilinear upsample + conv) with *sum* skip connections, a 1x1 prediction conv and a sigmoid.
* ``firenet``: FireNet (Scheerlinck et al., "Fast Image Reconstruction with an Event Camera",
  WACV 2020), the small variant: a 16-channel head, ConvGRU, residual block, ConvGRU, residual block,
  1x1 prediction (+ sigmoid here, so both attackers output [0, 1] frames). ~38 k parameters.

Both take a voxel grid ``(N, 5, H, W)`` (any H, W: E2VID pads to a multiple of 8 internally) and the
recurrent state from the previous window (``None`` at the start of a stream) and return
``(frame (N, 1, H, W), new_state)``. :func:`run_sequence` unrolls one over ``(N, T, 5, H, W)``.
They are trained by the project on the world's raw events -> reference frames (no downloadable
weights exist offline) with L1 + (1 - SSIM) + temporal consistency (:mod:`anonreid.models.losses`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from anonreid.models.layers import (
    ChannelAffine,
    ConvGRU,
    ConvLayer,
    ConvLSTM,
    LSTMState,
    ResidualBlock,
    UpsampleConv,
    pad_to_multiple,
)
from anonreid.models.registry import builder_args, create_model, model_cfg, register_model

State = Any  # a list of per-layer recurrent states (tensors or (h, c) tuples)


def detach_state(state: State) -> State:
    """Cut the graph through a recurrent state (truncated back-propagation through time)."""
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return state.detach()
    return type(state)(detach_state(s) for s in state)


def run_sequence(model: nn.Module, voxels: torch.Tensor, state: State = None) -> tuple[torch.Tensor, State]:
    """Unroll a recurrent reconstructor over ``(N, T, B, H, W)``; returns ``((N, T, 1, H, W), state)``."""
    frames = []
    for t in range(voxels.shape[1]):
        frame, state = model(voxels[:, t], state)
        frames.append(frame)
    return torch.stack(frames, dim=1), state


def with_input_affine(rec: nn.Module) -> nn.Module | None:
    """A copy of the reconstruction attacker ``rec`` with a per-channel input standardisation in front
    (its ``input_affine``, a :class:`~anonreid.models.layers.ChannelAffine`, identity until fitted):
    ``rec``'s own when it has one, else ``rec`` rebuilt with ``input_affine=True`` and its weights.
    None when its family takes no such input (``e2vid``)."""
    import copy

    cfg = model_cfg(rec)
    if "input_affine" not in builder_args(cfg.name):
        return None
    if isinstance(getattr(rec, "input_affine", None), ChannelAffine):
        return copy.deepcopy(rec)
    out = create_model(cfg.name, **{**dict(cfg.params), "input_affine": True})
    missing, unexpected = out.load_state_dict(rec.state_dict(), strict=False)  # the affine stays the identity
    if unexpected or any(not k.startswith("input_affine.") for k in missing):
        raise RuntimeError(f"{cfg.name}: rebuilt with input_affine, its weights no longer fit ({missing}, {unexpected})")
    return out.to(next(rec.parameters()).device)


# ------------------------------------------------------------------------------------------------ models


class E2VID(nn.Module):
    """Recurrent UNet: ConvLSTM encoders, residual bottleneck, sum skips, sigmoid output."""

    def __init__(self, in_bins: int = 5, base: int = 32, num_encoders: int = 3, num_res: int = 2) -> None:
        super().__init__()
        self.conventions = {"in_bins": in_bins, "out_channels": 1, "output_range": "image"}
        self.multiple = 2**num_encoders
        self.head = ConvLayer(in_bins, base, 5)
        chans = [base * 2**i for i in range(num_encoders + 1)]
        self.down = nn.ModuleList(ConvLayer(chans[i], chans[i + 1], 5, stride=2) for i in range(num_encoders))
        self.lstm = nn.ModuleList(ConvLSTM(chans[i + 1], chans[i + 1]) for i in range(num_encoders))
        self.res = nn.Sequential(*[ResidualBlock(chans[-1]) for _ in range(num_res)])
        self.up = nn.ModuleList(UpsampleConv(chans[i + 1], chans[i], 5) for i in reversed(range(num_encoders)))
        self.pred = nn.Conv2d(base, 1, 1)

    def forward(self, x: torch.Tensor, state: list[LSTMState] | None = None) -> tuple[torch.Tensor, list[LSTMState]]:
        x, (h, w) = pad_to_multiple(x, self.multiple)
        states = state if state is not None else [None] * len(self.lstm)
        head = self.head(x)
        skips, new_state = [], []
        y = head
        for down, lstm, s in zip(self.down, self.lstm, states, strict=True):
            hc = lstm(down(y), s)
            new_state.append(hc)
            y = hc[0]
            skips.append(y)
        y = self.res(y)
        for up, skip, target in zip(self.up, reversed(skips), [*reversed(skips[:-1]), head], strict=True):
            y = up(y + skip, target.shape[-2:])
        frame = torch.sigmoid(self.pred(y + head))
        return frame[..., :h, :w], new_state


class FireNet(nn.Module):
    """FireNet: 16-channel ConvGRU / residual stack, sigmoid output."""

    def __init__(self, in_bins: int = 5, base: int = 16, input_affine: bool = False) -> None:
        super().__init__()
        self.conventions = {"in_bins": in_bins, "out_channels": 1, "output_range": "image"}
        self.input_affine = ChannelAffine(in_bins) if input_affine else None
        self.head = ConvLayer(in_bins, base, 3)
        self.g1 = ConvGRU(base, base)
        self.r1 = ResidualBlock(base)
        self.g2 = ConvGRU(base, base)
        self.r2 = ResidualBlock(base)
        self.pred = nn.Conv2d(base, 1, 1)

    def forward(
        self, x: torch.Tensor, state: list[torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        s1, s2 = state if state is not None else (None, None)
        if self.input_affine is not None:
            x = self.input_affine(x)
        h1 = self.g1(self.head(x), s1)
        h2 = self.g2(self.r1(h1), s2)
        return torch.sigmoid(self.pred(self.r2(h2))), [h1, h2]


# -------------------------------------------------------------------------------------------- builders


@register_model("e2vid", family="reconstruction")
def e2vid(in_bins: int = 5, base: int = 32, num_encoders: int = 3, num_res: int = 2) -> nn.Module:
    """E2VID recurrent UNet (the paper-size attacker)."""
    return E2VID(in_bins, base, num_encoders, num_res)


@register_model("firenet", family="reconstruction")
def firenet(in_bins: int = 5, base: int = 16, input_affine: bool = False) -> nn.Module:
    """FireNet-size recurrent attacker (the CPU attacker); ``input_affine``: a fitted per-channel input
    standardisation (:class:`~anonreid.models.layers.ChannelAffine`), for attackers on anonymized events."""
    return FireNet(in_bins, base, input_affine)
