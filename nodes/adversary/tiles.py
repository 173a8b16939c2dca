"""Reconstruction in tiles around the people: what the adversary scores, at a fraction of a full frame's cost.

Every reconstruction score of the attack stage (SSIM / PSNR, retrieval) reads the person boxes of a clip's
last frame, and nothing else. A reconstruction view (the attack's input transform, then the recurrent
E_rec unrolled over the clip) is a stack of convolutions, so an output pixel depends on the inputs within
its *receptive radius* only: a tile reaching that radius beyond every box gives, inside the boxes, the
values the full frame gives, provided the tile sits on the frame's sampling grid wherever a net strides
(:func:`stride_multiple`: E2VID pads each input to a multiple of 8, the inversion's U halves it twice).
:func:`receptive_radius` measures the radius of a view by back-propagation from one output pixel (once
per view and clip length); :func:`person_tiles` grows the boxes by it, aligns both ends of each tile to
the stride multiple, clips them to the frame and merges the ones that overlap (a pixel of a box is then
only ever written by a tile in which it is exact); :func:`reconstruct_in_tiles` reconstructs each tile
and pastes it into a frame filled with :data:`OUTSIDE` (mid-grey: what lies outside every tile was not
reconstructed).

A view whose radius is over :data:`MAX_RADIUS` (a tile would be most of the frame), a frame whose sides
are not multiples of the stride multiple (its own grid is not a tile's), or a clip without
ground truth (a real sensor's, no reference frame: nothing is scored, and the auditor's grid shows the
full reconstruction) is reconstructed whole; a simulated clip with nobody in its last window is not
reconstructed at all. The equality inside the boxes is a test (tests/test_adversary_tiles.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from anonreid.events.detection import merge_overlapping_boxes

if TYPE_CHECKING:
    import torch
    from torch import nn

#: the value of a frame's pixels outside every tile (not reconstructed)
OUTSIDE = 0.5
#: a view reaching this far (px) is reconstructed on the full frame
MAX_RADIUS = 64
#: pixels added to a measured receptive radius
SLACK = 2

Tile = tuple[int, int, int, int]  # y0, y1, x0, x1 (end exclusive)


def receptive_radius(
    rec: nn.Module, transform: Callable[[torch.Tensor], torch.Tensor], bins: int, frames: int, seed: int = 0,
) -> int:
    """How far (px, Chebyshev) from an output pixel of the last frame the inputs of any of the ``frames``
    windows reach it, for ``transform`` then ``rec`` unrolled; over :data:`MAX_RADIUS` means "too far to
    tile". Measured by back-propagation from the centre pixel of two random clips: the farthest input with a
    non-zero gradient in either, plus :data:`SLACK` pixels (a path a dead unit happens to cut at the edge)."""
    import torch

    from anonreid.models.reconstruction import run_sequence

    side = 2 * MAX_RADIUS + 1
    gen = torch.Generator().manual_seed(seed)
    device = next(rec.parameters()).device
    with torch.inference_mode(False), torch.enable_grad():  # the attack stage reconstructs in inference mode
        x = torch.rand((2, frames, bins, side, side), generator=gen).requires_grad_(True)
        inp = x.to(device)
        inp = transform(inp.flatten(0, 1)).view(2, frames, -1, side, side)
        out, _ = run_sequence(rec, inp)
        # autograd.grad, not backward: the attacker's own parameter gradients stay untouched
        (grad,) = torch.autograd.grad(out[:, -1, 0, MAX_RADIUS, MAX_RADIUS].sum(), x)
    reach = torch.nonzero(grad.abs().sum(dim=(0, 1, 2)) > 0)
    if len(reach) == 0:
        return 0
    return int((reach - MAX_RADIUS).abs().max()) + SLACK


def stride_multiple(*parts: object) -> int:
    """The side multiple every strided net among ``parts`` (modules, or plain functions: 1) needs: the least
    common multiple of the ``multiple`` attributes of their submodules."""
    from torch import nn

    out = 1
    for part in parts:
        if isinstance(part, nn.Module):
            for m in part.modules():
                out = math.lcm(out, int(getattr(m, "multiple", 1)))
    return out


def person_tiles(boxes: Sequence[Sequence[float]], radius: int, frame_hw: tuple[int, int], multiple: int = 1,
                 ) -> list[Tile]:
    """Disjoint tiles covering each box (x1, y1, x2, y2) grown by ``radius`` px, their start aligned down and
    their end up to ``multiple``, clipped to the frame (whose sides are multiples of it); overlapping tiles
    are merged into their bounding tile (sorted by their left edge)."""
    h, w = frame_hw
    if h % multiple or w % multiple:
        raise ValueError(f"a {h}x{w} frame is not on the grid of a net striding by {multiple}: reconstruct it whole")

    def span(lo: float, hi: float, size: int) -> tuple[int, int]:
        start = max(0, math.floor(lo) - radius)
        end = min(size, math.ceil(hi) + radius + 1)
        return start - start % multiple, min(size, end + (-end) % multiple)

    grown = [[*span(x1, x2, w), *span(y1, y2, h)] for x1, y1, x2, y2 in boxes]  # [x0, x1, y0, y1]
    merged = merge_overlapping_boxes([[x0, y0, x1, y1] for x0, x1, y0, y1 in grown])
    return [(y0, y1, x0, x1) for x0, y0, x1, y1 in merged]


def reconstruct_in_tiles(
    rec: nn.Module, transform: Callable[[torch.Tensor], torch.Tensor], clip: np.ndarray, tiles: Sequence[Tile],
) -> np.ndarray:
    """Frames ``(T, H, W)`` of the clip ``(T, B, H, W)``: each tile reconstructed on its own, the rest
    :data:`OUTSIDE`."""
    from anonreid.models.evaluation import attacks as suite

    t, _, h, w = clip.shape
    out = np.full((t, h, w), OUTSIDE, np.float32)
    for y0, y1, x0, x1 in tiles:
        out[:, y0:y1, x0:x1] = suite.reconstruct(rec, np.ascontiguousarray(clip[None, :, :, y0:y1, x0:x1]), transform)[0]
    return out
