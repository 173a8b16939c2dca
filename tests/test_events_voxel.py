"""Voxel grids against an independent brute-force reference (python loops over events and voxels)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from anonreid.events import make_events
from anonreid.events.voxel import (
    crop_resize_voxel,
    events_to_voxel,
    events_to_voxel_torch,
    normalize_voxel,
    voxelize_windows_torch,
)

H, W, B = 7, 9, 5


def reference_voxel(t, x, y, p, num_bins, height, width, normalize=True, t_range=None):
    """The E2VID formula written as plainly as possible: one event, one bin at a time, floats."""
    grid = [[[0.0] * width for _ in range(height)] for _ in range(num_bins)]
    if len(t):
        t0, t1 = (t[0], t[-1]) if t_range is None else t_range
        span = (t1 - t0) or 1
        for ti, xi, yi, pi in zip(t, x, y, p, strict=True):
            ts = (num_bins - 1) * (ti - t0) / span
            lo = math.floor(ts)
            dt = ts - lo
            grid[lo][yi][xi] += pi * (1.0 - dt)
            if lo + 1 < num_bins:
                grid[lo + 1][yi][xi] += pi * dt
    out = np.array(grid, dtype=np.float64)
    if normalize:
        vals = [v for v in out.ravel() if v != 0]
        if vals:
            mean = sum(vals) / len(vals)
            std = math.sqrt(sum((v - mean) ** 2 for v in vals) / len(vals))
            for idx in np.ndindex(out.shape):
                if out[idx] != 0:
                    out[idx] = (out[idx] - mean) / (std if std > 0 else 1.0)
    return out


def random_events(rng, n, t_max=50_000, height=H, width=W):
    t = np.sort(rng.integers(0, t_max, n))
    return make_events(t, rng.integers(0, width, n), rng.integers(0, height, n), rng.choice([-1, 1], n))


def check(ev, normalize=True, t_range=None, num_bins=B, height=H, width=W):
    ref = reference_voxel(
        [int(v) for v in ev["t"]], [int(v) for v in ev["x"]], [int(v) for v in ev["y"]],
        [int(v) for v in ev["p"]], num_bins, height, width, normalize, t_range,
    )
    got = events_to_voxel(ev, num_bins, height, width, normalize=normalize, t_range=t_range)
    assert got.dtype == np.float32 and got.shape == (num_bins, height, width)
    np.testing.assert_allclose(got, ref, atol=1e-5, rtol=1e-5)
    got_t = events_to_voxel_torch(ev, num_bins, height, width, normalize=normalize, t_range=t_range)
    np.testing.assert_allclose(got_t.numpy(), got, atol=1e-5, rtol=1e-5)
    return got


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("normalize", [True, False])
def test_random_events_match_reference(seed, normalize):
    rng = np.random.default_rng(seed)
    check(random_events(rng, int(rng.integers(2, 400))), normalize=normalize)


def test_nominal_bounds_match_reference():
    rng = np.random.default_rng(10)
    ev = random_events(rng, 200, t_max=30_000)
    check(ev, t_range=(0, 33_333))
    check(ev, normalize=False, t_range=(0, 33_333))
    with pytest.raises(ValueError, match="outside t_range"):
        events_to_voxel(ev, B, H, W, t_range=(100, 200))


def test_empty_window_is_zero():
    ev = make_events([], [], [], [])
    assert not check(ev).any()
    assert not events_to_voxel_torch(ev, B, H, W).any()


def test_one_event():
    ev = make_events([123], [3], [4], [1])
    raw = check(ev, normalize=False)
    assert raw[0, 4, 3] == 1.0 and raw.sum() == 1.0  # zero span: everything in bin 0
    assert not check(ev).any()  # a single non-zero voxel has std 0: centred to 0, no NaN


def test_all_events_at_one_timestamp():
    ev = make_events([500] * 6, [0, 1, 1, 2, 8, 8], [0, 0, 0, 6, 6, 6], [1, 1, 1, -1, 1, 1])
    raw = check(ev, normalize=False)
    assert raw[1:].sum() == 0 and raw[0, 0, 1] == 2.0 and raw[0, 6, 8] == 2.0
    normed = check(ev)
    assert np.isfinite(normed).all()
    nz = normed[raw != 0]  # (a voxel equal to the mean becomes exactly 0, so select on the raw grid)
    assert abs(nz.mean()) < 1e-6 and abs(nz.std() - 1) < 1e-5


def test_events_on_bin_edges_and_last_bin():
    # span 400 us, B=5: bin edges every 100 us; t=400 is the last edge (all weight in bin 4)
    ev = make_events([0, 100, 200, 250, 300, 400], [0, 1, 2, 3, 4, 5], [0] * 6, [1, -1, 1, 1, -1, 1])
    raw = check(ev, normalize=False)
    for i, (b, x) in enumerate([(0, 0), (1, 1), (2, 2), (3, 4), (4, 5)]):
        assert raw[b, 0, x] == ev["p"][[0, 1, 2, 4, 5][i]]
    assert raw[2, 0, 3] == 0.5 and raw[3, 0, 3] == 0.5
    assert raw.sum() == 2.0  # weights of each event sum to its polarity


def test_polarity_cancellation_counts_as_zero():
    ev = make_events([0, 0, 10], [1, 1, 2], [1, 1, 2], [1, -1, 1])
    normed = check(ev)
    assert normed[0, 1, 1] == 0


@pytest.mark.parametrize("block", [1, 7, 64])
def test_blocked_kernel_matches_reference(monkeypatch, block):
    """Bin runs cut into many blocks (a block boundary inside every bin) give the same grid."""
    import anonreid.events.voxel as voxel_mod

    monkeypatch.setattr(voxel_mod, "_BLOCK", block)
    rng = np.random.default_rng(11)
    ev = random_events(rng, 150, t_max=997)
    check(ev, normalize=False)
    check(ev, t_range=(0, 998))  # span not divisible by B-1: bin starts between integer microseconds
    check(random_events(rng, 150), t_range=(-3, 50_002))


def test_absolute_timestamps_and_dense_voxels():
    """Unix-epoch microseconds (t - t_k must be exact) and many events per voxel (float32 sums)."""
    rng = np.random.default_rng(12)
    ev = random_events(rng, 3000, t_max=33_333)
    shifted = make_events(ev["t"] + 1_732_000_000_000_000, ev["x"], ev["y"], ev["p"])
    raw = check(shifted, normalize=False)
    np.testing.assert_allclose(raw, events_to_voxel(ev, B, H, W, normalize=False), atol=1e-5)
    check(shifted)


def test_strided_event_view():
    rng = np.random.default_rng(13)
    ev = random_events(rng, 400)
    check(ev[::3])
    readonly = ev.copy()
    readonly.setflags(write=False)
    np.testing.assert_array_equal(events_to_voxel(readonly, B, H, W), events_to_voxel(ev, B, H, W))


def test_normalisation_statistics_on_random_grid():
    rng = np.random.default_rng(3)
    ev = random_events(rng, 1000)
    v = events_to_voxel(ev, B, H, W)
    nz = v[events_to_voxel(ev, B, H, W, normalize=False) != 0].astype(np.float64)
    assert abs(nz.mean()) < 1e-5 and abs(nz.std() - 1) < 1e-5
    raw = events_to_voxel(random_events(rng, 1000), B, H, W, normalize=False)
    before = raw.copy()
    normalize_voxel(raw)
    assert np.array_equal(raw, before)  # input not modified


def test_rejects_bad_input():
    with pytest.raises(TypeError, match="dtype"):
        events_to_voxel(np.zeros(3), B, H, W)
    with pytest.raises(ValueError, match="outside"):
        events_to_voxel(make_events([0], [W], [0], [1]), B, H, W)
    with pytest.raises(ValueError, match="outside"):
        events_to_voxel(make_events([0, 1, 2], [0, 0, 0], [0, 0, H], [1, 1, 1]), B, H, W)
    with pytest.raises(ValueError, match="num_bins"):
        events_to_voxel(make_events([0], [0], [0], [1]), 0, H, W)


def test_torch_accepts_columns_and_mapping():
    rng = np.random.default_rng(4)
    ev = random_events(rng, 300)
    ref = events_to_voxel(ev, B, H, W)
    cols = [torch.from_numpy(ev[n].astype(np.int64)) for n in "txyp"]
    np.testing.assert_allclose(events_to_voxel_torch(cols, B, H, W).numpy(), ref, atol=1e-5)
    np.testing.assert_allclose(events_to_voxel_torch({n: ev[n] for n in "txyp"}, B, H, W).numpy(), ref, atol=1e-5)


@pytest.mark.parametrize("nominal", [False, True])
def test_batched_windows_equal_per_window_numpy(nominal):
    rng = np.random.default_rng(5)
    window = 10_000
    t = np.sort(np.concatenate([rng.integers(0, 20_000, 300), rng.integers(40_000, 50_000, 5), [55_000]]))
    ev = make_events(t, rng.integers(0, W, len(t)), rng.integers(0, H, len(t)), rng.choice([-1, 1], len(t)))
    starts = np.arange(0, 60_000, window)  # windows 2 and 3 are empty, 4 and 5 have few events
    got = voxelize_windows_torch(ev, starts, window, B, H, W, nominal_bounds=nominal)
    assert got.shape == (len(starts), B, H, W)
    for i, s in enumerate(starts):
        sel = ev[(ev["t"] >= s) & (ev["t"] < s + window)]
        ref = events_to_voxel(sel, B, H, W, t_range=(s, s + window) if nominal else None)
        np.testing.assert_allclose(got[i].numpy(), ref, atol=1e-5, rtol=1e-5)
    assert not got[2].any() and not got[3].any()


def test_batched_windows_ignore_events_outside_and_reject_overlap():
    ev = make_events([5, 15, 25], [0, 1, 2], [0, 0, 0], [1, 1, 1])
    got = voxelize_windows_torch(ev, [10], 10, B, H, W, normalize=False)
    assert got.sum() == 1.0 and got[0, 0, 0, 1] == 1.0
    with pytest.raises(ValueError, match="overlap"):
        voxelize_windows_torch(ev, [0, 5], 10, B, H, W)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_matches_cpu():
    rng = np.random.default_rng(6)
    ev = random_events(rng, 5000)
    cpu = voxelize_windows_torch(ev, [0, 25_000], 25_000, B, H, W)
    gpu = voxelize_windows_torch(ev, [0, 25_000], 25_000, B, H, W, device="cuda")
    np.testing.assert_allclose(gpu.cpu().numpy(), cpu.numpy(), atol=1e-5)


def test_crop_resize_numpy_equals_torch():
    rng = np.random.default_rng(7)
    v = rng.standard_normal((B, 40, 30)).astype(np.float32)
    for box, out in [((3.2, 5.7, 20.1, 37.9), (24, 12)), ((-5, -5, 50, 50), (64, 48)), ((0, 0, 1, 1), (3, 2))]:
        a = crop_resize_voxel(v, box, out)
        b = crop_resize_voxel(torch.from_numpy(v), box, out)
        assert a.shape == (B, *out) and tuple(b.shape) == (B, *out)
        np.testing.assert_allclose(a, b.numpy(), atol=1e-5)


def test_crop_resize_identity_and_errors():
    v = np.arange(B * 6 * 4, dtype=np.float32).reshape(B, 6, 4)
    np.testing.assert_array_equal(crop_resize_voxel(v, (1, 2, 3, 5), (3, 2)), v[:, 2:5, 1:3])
    with pytest.raises(ValueError, match="empty"):
        crop_resize_voxel(v, (10, 10, 20, 20), (3, 2))
    with pytest.raises(ValueError, match="non-finite"):
        crop_resize_voxel(v, (float("nan"), 0, 2, 2), (3, 2))


def test_empty_middle_bins():
    ev = make_events([0, 10, 400], [1, 2, 3], [0, 0, 0], [1, -1, 1])  # bins 1..3 hold only carried weight
    raw = check(ev, normalize=False)
    assert raw[0, 0, 2] == pytest.approx(-0.9) and raw[1, 0, 2] == pytest.approx(-0.1)
    assert raw[2:4].sum() == 0 and raw[4, 0, 3] == 1.0
    check(make_events([0, 400], [1, 2], [0, 0], [1, 1]), normalize=False)
