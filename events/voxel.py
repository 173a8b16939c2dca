"""Voxel grids: events -> (B, H, W) float32, the E2VID convention used by the paper.

The formula (Rebecq et al., E2VID, TPAMI 2019; Ahmad et al., ICCV 2023):

* timestamps are scaled to ``[0, B-1]`` between the window's first and last event (or between the
  window's nominal bounds ``t_range``): ``ts = (B-1) * (t - t_start) / (t_end - t_start)``, with a zero
  span treated as 1 us (every event then lands in bin 0, as in E2VID);
* each event adds ``p * (1 - dt)`` to bin ``floor(ts)`` and ``p * dt`` to bin ``floor(ts) + 1`` with
  ``dt = ts - floor(ts)`` and polarity ``p`` in {-1, +1} (an event exactly on the last bin edge puts
  all its weight in bin ``B-1``);
* optionally the non-zero voxels are normalised to mean 0 and population standard deviation 1; voxels
  that are exactly zero stay zero (if all non-zero voxels are equal the standard deviation is 0 and
  they are only centred, i.e. become 0, instead of dividing by zero as E2VID does).

The CPU kernels (numpy, and torch for an event array) use that events are sorted: each time bin is
a contiguous run of events, found by bisection with exact integer arithmetic, so no per-event
``floor`` is needed and ``t - t_k`` has no cancellation error even for Unix-epoch microseconds (an
exact integer difference plus the bin start's fraction, rounded once to float32). The runs are cut into blocks
of :data:`_BLOCK` events whose temporaries stay in the CPU cache; ``x`` and ``y`` are read together as
one 32-bit word of the packed event record. Each block is scattered in place into one float32 grid
(``np.add.at``, or ``Tensor.scatter_add_`` for torch), so nothing grid-sized is allocated per block.
Weights and sums are float32, as in E2VID's own implementation: the relative error of a voxel grows
like (events in it) x 6e-8. The last bin's right-hand weights are all zero (only events at the
window's end fall in it) and are not scattered. The batched torch kernel (CPU or CUDA) uses
``index_add_`` on flattened ``(window, bin, y, x)`` indices, with a spare bin ``B`` per window that
takes the last bin's right-hand weights and is dropped.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from anonreid.events.types import EVENT_DTYPE

if TYPE_CHECKING:  # torch is imported lazily so that numpy users do not pay for it
    import torch

__all__ = [
    "crop_resize_voxel",
    "events_to_voxel",
    "events_to_voxel_torch",
    "normalize_voxel",
    "voxelize_windows_torch",
]


def _check_grid(num_bins: int, height: int, width: int) -> None:
    if num_bins < 1 or height < 1 or width < 1:
        raise ValueError(f"voxel grid must have num_bins, height, width >= 1, got {num_bins}, {height}, {width}")


def _check_events(events: np.ndarray) -> None:
    if not isinstance(events, np.ndarray) or events.dtype != EVENT_DTYPE:
        got = events.dtype if isinstance(events, np.ndarray) else type(events).__name__
        raise TypeError(f"expected an event array of dtype {EVENT_DTYPE} (use make_events), got {got}")


def _time_scale(t_first: int, t_last: int, num_bins: int) -> float:
    """Factor that maps ``t - t_first`` (us) onto ``[0, B-1]`` (E2VID: a zero span counts as 1)."""
    span = t_last - t_first
    if span < 0:
        raise ValueError(f"t_range end {t_last} is before its start {t_first}")
    return (num_bins - 1) / (span if span > 0 else 1)


# x and y are adjacent little-endian uint16 fields, so one '<u4' read at x's offset gives x | y << 16
_FIELDS = EVENT_DTYPE.fields
assert _FIELDS is not None and _FIELDS["y"][1] == _FIELDS["x"][1] + 2
assert EVENT_DTYPE["x"] == EVENT_DTYPE["y"] == np.dtype("<u2")
_XY_OFFSET: int = _FIELDS["x"][1]

_BLOCK = 1 << 15  # events per block: its temporaries (about 20 bytes an event) stay in the L2 cache


def _bin_runs(t: np.ndarray, t_first: int, t_last: int, num_bins: int) -> list[tuple[int, int, int, float]]:
    """Per time bin ``k``: ``(start, end, a_k, off_k)`` with the bin's events ``t[start:end]``.

    Event ``i`` is in bin ``k = floor((B-1) * (t_i - t_first) / span)``, i.e. bin ``k`` starts at the
    first ``t >= a_k = t_first + ceil(k * span / (B-1))`` (exact integers, found by bisection on the
    sorted, possibly strided ``t``). ``off_k = a_k - t_k`` in ``[0, 1)`` is the distance from that
    integer to the bin's exact start ``t_k = t_first + k * span / (B-1)``, so that
    ``t - t_k = (t - a_k) + off_k`` with an exact first term. A zero span counts as 1 (all in bin 0).
    """
    span = max(t_last - t_first, 1)
    div = max(num_bins - 1, 1)
    runs = []
    start = 0
    for k in range(num_bins):
        a_k = t_first + (-(-k * span // div))
        end = bisect.bisect_left(t, t_first + (-(-(k + 1) * span // div)), lo=start) if k + 1 < num_bins else len(t)
        runs.append((start, end, a_k, (-(k * span) % div) / div))
        start = end
    return runs


def _voxel_blocks(
    events: np.ndarray, num_bins: int, height: int, width: int, t_range: tuple[int, int] | None
) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """The bilinear weights of a sorted event array, block by block (see the module docstring).

    Yields ``(k, index, left, right)`` per block of events of time bin ``k``: ``index`` (intp) is the
    flat position ``(k * H + y) * W + x`` in the ``(B, H, W)`` grid, ``left = p * (1 - dt)`` belongs
    there and ``right = p * dt`` (float32) one plane further. The arrays are reused buffers, valid until
    the next iteration; the consumer may modify them. Raises ValueError for events off the grid or
    outside ``t_range``.
    """
    n = len(events)
    t = events["t"]
    t_first, t_last = (int(t[0]), int(t[-1])) if t_range is None else (int(t_range[0]), int(t_range[1]))
    if t_range is not None and (t[0] < t_first or t[-1] > t_last):
        raise ValueError(f"events span {t[0]}..{t[-1]} us, outside t_range {t_first}..{t_last} us")
    scale = np.float32(_time_scale(t_first, t_last, num_bins))
    if not events.flags.c_contiguous:  # the packed (x, y) view below needs the records back to back
        events = np.ascontiguousarray(events)
        t = events["t"]
    stride = events.strides[0]
    xy_all = np.ndarray((n,), dtype="<u4", buffer=events, offset=_XY_OFFSET, strides=(stride,))
    p_all = events["p"]
    size = min(n, _BLOCK)
    xy_buf, index_buf = np.empty(size, np.uint32), np.empty(size, np.intp)
    left_buf, right_buf = np.empty(size, np.float32), np.empty(size, np.float32)
    for k, (run_start, run_end, a_k, off_k) in enumerate(_bin_runs(t, t_first, t_last, num_bins)):
        for a in range(run_start, run_end, _BLOCK):
            b = min(run_end, a + _BLOCK)
            m = b - a
            xy, index, left, right = xy_buf[:m], index_buf[:m], left_buf[:m], right_buf[:m]
            np.copyto(xy, xy_all[a:b])
            if int(xy.max()) >> 16 >= height:
                raise ValueError(f"events outside the {width}x{height} voxel grid (max y {int(xy.max()) >> 16})")
            np.right_shift(xy, 16, out=index, casting="unsafe")  # y
            np.bitwise_and(xy, 0xFFFF, out=xy)  # x
            if int(xy.max()) >= width:
                raise ValueError(f"events outside the {width}x{height} voxel grid (max x {int(xy.max())})")
            if k:
                index += k * height
            index *= width
            index += xy
            np.copyto(left, p_all[a:b])  # p
            np.subtract(t[a:b], float(a_k), out=right, dtype=np.float64, casting="same_kind")  # t - a_k, exact in f64
            if off_k:
                right += np.float32(off_k)
            right *= left
            right *= scale  # p * dt
            left -= right  # p * (1 - dt)
            yield k, index, left, right


def events_to_voxel(
    events: np.ndarray,
    num_bins: int,
    height: int,
    width: int,
    normalize: bool = True,
    t_range: tuple[int, int] | None = None,
) -> np.ndarray:
    """Voxel grid ``(num_bins, height, width)`` float32 of a window of events (see the module docstring).

    ``t_range=(t_start, t_end)`` scales time between the window's nominal bounds instead of its first and
    last event; every event must lie inside it. Events must lie on the ``width x height`` grid.
    """
    _check_events(events)
    _check_grid(num_bins, height, width)
    plane = height * width
    grid = np.zeros(num_bins * plane, dtype=np.float32)
    if len(events):
        for k, index, left, right in _voxel_blocks(events, num_bins, height, width, t_range):
            np.add.at(grid, index, left)
            if k + 1 < num_bins:  # the last bin's right weights are zero (dt = 0 there)
                index += plane
                np.add.at(grid, index, right)
    voxel = grid.reshape(num_bins, height, width)
    return normalize_voxel(voxel) if normalize else voxel


_NORM_CHUNK = 1 << 16  # voxels per chunk of the numpy normalisation (float64 copies stay in cache)


def _normalize_numpy(voxel: np.ndarray) -> np.ndarray:
    """:func:`normalize_voxel` for a numpy array: float64 sums over cache-sized chunks, then one pass."""
    flat = voxel.reshape(-1)
    count = int(np.count_nonzero(flat))
    out = voxel.copy()
    if count == 0:
        return out
    total = total_sq = 0.0
    for i in range(0, flat.size, _NORM_CHUNK):
        chunk = flat[i : i + _NORM_CHUNK].astype(np.float64)
        total += float(chunk.sum())
        # einsum, not np.dot: OpenBLAS threads its dot product, and with the other core busy those threads
        # spin: 2.9 ms a chunk against 30 us (docs/BENCHMARKS.md, "Normalisation without BLAS")
        total_sq += float(np.einsum("i,i->", chunk, chunk))
    mean = total / count
    var = max(total_sq / count - mean * mean, 0.0)
    inv_std = 1.0 / np.sqrt(var) if var > 0 else 1.0
    out_flat = out.reshape(-1)
    for i in range(0, flat.size, _NORM_CHUNK):
        src, dst = flat[i : i + _NORM_CHUNK], out_flat[i : i + _NORM_CHUNK]
        np.subtract(src, mean, out=dst, casting="same_kind")
        dst *= inv_std
        dst[src == 0] = 0
    return out


def normalize_voxel(voxel: Any) -> Any:
    """Normalise the non-zero voxels to mean 0, population std 1 (zeros stay zero); numpy or torch.

    Statistics are computed in float64 (sum and sum of squares of the non-zero voxels). A torch input of
    shape ``(N, B, H, W)`` is normalised per window. The input is not modified.
    """
    if isinstance(voxel, np.ndarray):
        return _normalize_numpy(voxel)
    import torch

    if not isinstance(voxel, torch.Tensor):
        raise TypeError(f"normalize_voxel takes a numpy array or a torch tensor, got {type(voxel).__name__}")
    batched = voxel.dim() == 4
    v = voxel if batched else voxel.unsqueeze(0)
    mask = v != 0
    v64 = v.to(torch.float64)
    dims = (1, 2, 3)
    count = mask.sum(dim=dims).clamp(min=1).to(torch.float64)
    mean = v64.sum(dim=dims) / count
    var = ((v64 * v64).sum(dim=dims) / count - mean * mean).clamp(min=0)
    std = torch.sqrt(var)
    std = torch.where(std > 0, std, torch.ones_like(std))
    normed = ((v64 - mean.view(-1, 1, 1, 1)) / std.view(-1, 1, 1, 1)).to(v.dtype)
    result = torch.where(mask, normed, torch.zeros_like(v))
    return result if batched else result.squeeze(0)


_COLUMN_DTYPES = (("int64", "int64"), ("int64", "int64"), ("int64", "int64"), ("float32", "float32"))


def _event_tensors(events_or_tensors: Any, device: Any) -> tuple[torch.Tensor, ...]:
    """``(t int64, x int64, y int64, p float32)`` tensors on ``device`` from an event array or columns."""
    import torch

    if isinstance(events_or_tensors, np.ndarray):
        _check_events(events_or_tensors)
        cols: Sequence[Any] = [events_or_tensors[name] for name in "txyp"]
    elif isinstance(events_or_tensors, Mapping):
        cols = [events_or_tensors[name] for name in "txyp"]
    else:
        cols = list(events_or_tensors)
        if len(cols) != 4:
            raise TypeError("events_or_tensors must be an event array, a mapping t/x/y/p or 4 columns t, x, y, p")
    out = []
    for col, (np_dt, torch_dt) in zip(cols, _COLUMN_DTYPES, strict=True):
        if isinstance(col, torch.Tensor):
            out.append(col.to(device=device, dtype=getattr(torch, torch_dt)))
        else:  # structured-array fields are strided views: copy into a contiguous column first
            out.append(torch.from_numpy(np.asarray(col).astype(np_dt, copy=True)).to(device=device))
    return tuple(out)


def events_to_voxel_torch(
    events_or_tensors: Any,
    num_bins: int,
    height: int,
    width: int,
    normalize: bool = True,
    device: Any = None,
    t_range: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Torch version of :func:`events_to_voxel` (same formula) -> ``(B, H, W)`` float32 on ``device``.

    Accepts an event array, a mapping with ``t, x, y, p`` or four columns (tensors or arrays), sorted
    by ``t``. ``device`` defaults to the columns' device (CPU for numpy input).
    """
    import torch

    _check_grid(num_bins, height, width)
    if isinstance(events_or_tensors, np.ndarray) and (device is None or torch.device(device).type == "cpu"):
        grid = _voxel_torch_cpu(events_or_tensors, num_bins, height, width, t_range)
        return normalize_voxel(grid) if normalize else grid
    t, x, y, p = _event_tensors(events_or_tensors, device)
    if t.numel() == 0:
        return torch.zeros((num_bins, height, width), dtype=torch.float32, device=t.device)
    if t_range is None:
        t_first, t_last = int(t[0]), int(t[-1])
    else:
        t_first, t_last = int(t_range[0]), int(t_range[1])
        if int(t[0]) < t_first or int(t[-1]) > t_last:
            raise ValueError(f"events span {int(t[0])}..{int(t[-1])} us, outside t_range {t_first}..{t_last} us")
    if int(x.max()) >= width or int(y.max()) >= height or int(x.min()) < 0 or int(y.min()) < 0:
        raise ValueError(f"events outside the {width}x{height} voxel grid")
    ts = (t - t_first).to(torch.float64) * _time_scale(t_first, t_last, num_bins)
    grid = _accumulate(ts, x, y, p, torch.zeros_like(t), 1, num_bins, height, width)[0]
    return normalize_voxel(grid) if normalize else grid


def _voxel_torch_cpu(
    events: np.ndarray, num_bins: int, height: int, width: int, t_range: tuple[int, int] | None
) -> torch.Tensor:
    """CPU path of :func:`events_to_voxel_torch` for an event array: the numpy kernel's blocks,
    scattered in place with ``Tensor.scatter_add_`` (zero-copy views of the block buffers)."""
    import torch

    _check_events(events)
    plane = height * width
    grid = torch.zeros(num_bins * plane, dtype=torch.float32)
    if len(events):
        for k, index, left, right in _voxel_blocks(events, num_bins, height, width, t_range):
            index_t = torch.from_numpy(index)
            grid.scatter_add_(0, index_t, torch.from_numpy(left))
            if k + 1 < num_bins:
                index_t += plane
                grid.scatter_add_(0, index_t, torch.from_numpy(right))
    return grid.view(num_bins, height, width)


def _accumulate(
    ts: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    p: torch.Tensor,
    window: torch.Tensor,
    num_windows: int,
    num_bins: int,
    height: int,
    width: int,
) -> torch.Tensor:
    """Scatter the bilinear weights into ``(num_windows, B, H, W)``; ``ts`` already in ``[0, B-1]``."""
    import torch

    plane = height * width
    tis = ts.to(torch.int64)  # floor, ts >= 0
    right = (ts - tis).to(torch.float32) * p
    left = p - right
    idx = (window * (num_bins + 1) + tis) * plane + y * width + x
    grid = torch.zeros(num_windows * (num_bins + 1) * plane, dtype=torch.float32, device=ts.device)
    grid.index_add_(0, idx, left)
    grid.index_add_(0, idx + plane, right)
    return grid.view(num_windows, num_bins + 1, height, width)[:, :num_bins].contiguous()


def voxelize_windows_torch(
    events: Any,
    window_starts_us: Any,
    window_us: int,
    num_bins: int,
    height: int,
    width: int,
    normalize: bool = True,
    device: Any = None,
    nominal_bounds: bool = False,
) -> torch.Tensor:
    """Voxel grids of many windows in one call -> ``(N, B, H, W)`` float32.

    Window ``i`` holds the events with ``start_i <= t < start_i + window_us`` (half-open); the starts
    must be increasing and the windows must not overlap. Events outside every window are ignored.
    By default time is scaled per window between its first and last event (E2VID); with
    ``nominal_bounds`` between ``start_i`` and ``start_i + window_us``. An empty window gives zeros.
    """
    import torch

    _check_grid(num_bins, height, width)
    t, x, y, p = _event_tensors(events, device)
    starts = torch.as_tensor(np.asarray(window_starts_us) if not isinstance(window_starts_us, torch.Tensor)
                             else window_starts_us).to(t.device, torch.int64).reshape(-1)
    n_windows = int(starts.numel())
    if n_windows == 0:
        return torch.zeros((0, num_bins, height, width), dtype=torch.float32, device=t.device)
    if window_us <= 0:
        raise ValueError(f"window_us must be positive, got {window_us}")
    if n_windows > 1 and bool((starts[1:] - starts[:-1] < window_us).any()):
        raise ValueError("window starts must increase by at least window_us (windows may not overlap)")
    w = torch.searchsorted(starts, t, right=True) - 1
    inside = (w >= 0) & (t < starts[w.clamp(min=0)] + window_us)
    if not bool(inside.all()):
        t, x, y, p, w = t[inside], x[inside], y[inside], p[inside], w[inside]
    if t.numel() and (int(x.max()) >= width or int(y.max()) >= height or int(x.min()) < 0 or int(y.min()) < 0):
        raise ValueError(f"events outside the {width}x{height} voxel grid")
    if nominal_bounds:
        first = starts
        span = torch.full_like(starts, window_us)
    else:
        big = torch.iinfo(torch.int64).max
        first = torch.full((n_windows,), big, dtype=torch.int64, device=t.device).scatter_reduce(
            0, w, t, reduce="amin", include_self=True
        )
        last = torch.full((n_windows,), -big, dtype=torch.int64, device=t.device).scatter_reduce(
            0, w, t, reduce="amax", include_self=True
        )
        span = last - first
    scale = (num_bins - 1) / span.clamp(min=1).to(torch.float64)
    ts = (t - first[w]).to(torch.float64) * scale[w]
    grid = _accumulate(ts, x, y, p, w, n_windows, num_bins, height, width)
    return normalize_voxel(grid) if normalize else grid


def _resize_weights(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and weights of a bilinear resize (PyTorch ``align_corners=False`` convention)."""
    scale = n_in / n_out
    src = (np.arange(n_out, dtype=np.float64) + 0.5) * scale - 0.5
    src = np.clip(src, 0.0, None)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, src - i0


def _crop_bounds(box_xyxy: Sequence[float], height: int, width: int) -> tuple[int, int, int, int]:
    """Integer pixel bounds of a box clipped to the image (outward rounding); raises on an empty box."""
    x1, y1, x2, y2 = (float(v) for v in box_xyxy)
    if not all(np.isfinite([x1, y1, x2, y2])):
        raise ValueError(f"box {tuple(box_xyxy)} has non-finite coordinates")
    c0 = max(0, int(np.floor(x1)))
    r0 = max(0, int(np.floor(y1)))
    c1 = min(width, int(np.ceil(x2)))
    r1 = min(height, int(np.ceil(y2)))
    if c1 <= c0 or r1 <= r0:
        raise ValueError(f"box {tuple(box_xyxy)} is empty inside the {width}x{height} voxel grid")
    return r0, r1, c0, c1


def crop_resize_voxel(voxel: Any, box_xyxy: Sequence[float], out_hw: tuple[int, int]) -> Any:
    """Crop ``voxel (B, H, W)`` to ``box_xyxy`` (pixels, clipped to the grid) and resize it bilinearly.

    Works on numpy arrays and torch tensors (same result: PyTorch's ``align_corners=False`` bilinear
    without antialiasing); returns ``(B, out_h, out_w)`` of the input's kind and dtype. The paper's crop
    size is 384x192 (``out_hw=(384, 192)``).
    """
    out_h, out_w = (int(v) for v in out_hw)
    if out_h < 1 or out_w < 1:
        raise ValueError(f"out_hw must be positive, got {out_hw}")
    if voxel.ndim != 3:
        raise ValueError(f"expected a (B, H, W) voxel grid, got shape {tuple(voxel.shape)}")
    r0, r1, c0, c1 = _crop_bounds(box_xyxy, int(voxel.shape[1]), int(voxel.shape[2]))
    if isinstance(voxel, np.ndarray):
        crop = voxel[:, r0:r1, c0:c1].astype(np.float64)
        yi0, yi1, wy = _resize_weights(r1 - r0, out_h)
        xi0, xi1, wx = _resize_weights(c1 - c0, out_w)
        rows = crop[:, yi0, :] * (1 - wy)[None, :, None] + crop[:, yi1, :] * wy[None, :, None]
        out = rows[:, :, xi0] * (1 - wx)[None, None, :] + rows[:, :, xi1] * wx[None, None, :]
        return out.astype(voxel.dtype if voxel.dtype.kind == "f" else np.float32)
    import torch
    import torch.nn.functional as F

    if not isinstance(voxel, torch.Tensor):
        raise TypeError(f"crop_resize_voxel takes a numpy array or a torch tensor, got {type(voxel).__name__}")
    crop_t = voxel[:, r0:r1, c0:c1].unsqueeze(0)
    if not crop_t.is_floating_point():
        crop_t = crop_t.float()
    return F.interpolate(crop_t, size=(out_h, out_w), mode="bilinear", align_corners=False)[0]
