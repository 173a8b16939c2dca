"""The adversary reconstructs in tiles around the people (nodes/adversary/tiles.py): inside every person
box the tiled reconstruction equals the full frame's, for every view of the shipped attacker side and for
an E2VID whose input is padded to its stride multiple; the tiles are disjoint, aligned and clipped."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anonreid.models.evaluation import attacks as suite
from anonreid.models.registry import create_model
from anonreid.nodes.adversary import tiles
from anonreid.nodes.adversary.attackers import load_attackers

H, W, T, BINS = 240, 320, 3, 5
#: people as the world places them: one alone, two side by side (their tiles merge), one on the frame's edge
BOXES = [(40.0, 60.0, 80.5, 180.0), (190.0, 30.0, 230.0, 150.0), (215.0, 40.0, 260.0, 160.0), (290.0, 120.0, 320.0, 240.0)]


def _clip(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    clip = np.zeros((T, BINS, H, W), np.float32)
    for x1, y1, x2, y2 in BOXES:  # events where the people are, a sparse noise floor elsewhere
        clip[:, :, int(y1):int(y2), int(x1):int(x2)] = rng.random((T, BINS, int(y2) - int(y1), int(x2) - int(x1)))
    clip += (rng.random(clip.shape) < 0.01) * rng.random(clip.shape)
    return np.clip(clip, 0, 1)


def _assert_same_in_boxes(rec: torch.nn.Module, transform, clip: np.ndarray) -> list[tiles.Tile]:  # type: ignore[no-untyped-def]
    radius = tiles.receptive_radius(rec, transform, BINS, T)
    assert 0 < radius <= tiles.MAX_RADIUS
    cut = tiles.person_tiles(BOXES, radius, (H, W), tiles.stride_multiple(transform, rec))
    tiled = tiles.reconstruct_in_tiles(rec, transform, clip, cut)
    full = suite.reconstruct(rec, clip[None], transform)[0]
    for x1, y1, x2, y2 in BOXES:
        ys, xs = slice(int(np.floor(y1)), int(np.ceil(y2))), slice(int(np.floor(x1)), int(np.ceil(x2)))
        np.testing.assert_allclose(tiled[:, ys, xs][-1], full[:, ys, xs][-1], atol=1e-5)
    assert not np.allclose(tiled, full, atol=1e-3)  # outside the tiles: not reconstructed
    return cut


@pytest.mark.parametrize("view", ["anonymized", "inversion", "linear", "adaptive", "finetuned"])
def test_every_shipped_view_is_the_full_frames_inside_the_boxes(view: str) -> None:
    side = load_attackers(None).side
    assert side is not None
    rec, transform = suite.view_models(side, "unit")[view]
    assert tiles.stride_multiple(transform, rec) == (4 if view == "inversion" else 1)  # its U halves twice
    _assert_same_in_boxes(rec, transform, _clip())
    radius = tiles.receptive_radius(rec, transform, BINS, T)
    ((y0, y1, x0, x1),) = tiles.person_tiles(BOXES[:1], radius, (H, W), tiles.stride_multiple(transform, rec))
    # one person's tile: FireNet reaches 12-14 px over three windows, through the inversion's U 42
    assert (y1 - y0) * (x1 - x0) < 0.4 * H * W, f"{view}: one person's tile is {(y1 - y0) * (x1 - x0) / (H * W):.0%} of the frame"


def test_an_e2vid_padded_to_its_stride_multiple_is_tiled_on_its_grid() -> None:
    torch.manual_seed(0)
    rec = create_model("e2vid", base=8, num_encoders=2, num_res=1).eval()
    assert rec.multiple == 4
    cut = _assert_same_in_boxes(rec, lambda v: v, _clip(1))
    assert tiles.stride_multiple(rec) == 4
    assert all(v % 4 == 0 for tile in cut for v in tile)


def test_person_tiles_grow_align_clip_and_merge() -> None:
    cut = tiles.person_tiles(BOXES, 10, (H, W), multiple=8)
    # the two side-by-side people share one tile; the edge person's tile stops at the frame
    assert cut == [(48, 192, 24, 96), (16, 176, 176, 272), (104, 240, 280, 320)]
    with pytest.raises(ValueError, match="241x320 frame"):
        tiles.person_tiles(BOXES, 10, (241, W), multiple=8)
    assert tiles.person_tiles([], 10, (H, W)) == []
    # a chain: b overlaps neither a nor c, but the tile a and c merge into
    a, b, c = (0, 0, 10, 10), (24, 0, 35, 5), (5, 11, 20, 20)
    assert tiles.person_tiles([a, b, c], 2, (100, 100)) == [(0, 23, 0, 38)]
    assert tiles.person_tiles([b, c, a], 2, (100, 100)) == [(0, 23, 0, 38)]


def test_a_view_reaching_farther_than_the_cap_is_not_tiled() -> None:
    torch.manual_seed(0)
    rec = create_model("e2vid").eval()  # three stride-2 encoders with 5x5 convs: reaches over 64 px
    assert tiles.receptive_radius(rec, lambda v: v, BINS, T) > tiles.MAX_RADIUS
