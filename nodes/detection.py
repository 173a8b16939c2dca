"""People boxes from event activity, with no ground truth at run time.

A person walking in front of a static event camera is a dense, connected blob of events; the
background gives sparse noise (shot noise, leak events, hot pixels). The detector turns each window's
events into a coarse count image (``cell`` x ``cell`` pixel cells), smooths it in time with an
exponential decay (a person who slows down for a few windows keeps their blob) and in space with a
3x3 box filter (isolated noise events fall below the threshold), thresholds it, closes small gaps
(legs and torso often fire separately), labels connected components (``scipy.ndimage``) and keeps the
components whose size and aspect ratio look like a person. Pixels that fire in almost every window
(hot pixels) are learned online and masked out.

Everything is vectorised numpy on the cell grid (80 x 60 cells for the 320 x 240 default sensor), so a
window costs well under a millisecond of the camera node's budget.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from anonreid.events.types import SensorSize


@dataclass(frozen=True)
class DetectorConfig:
    """Parameters of :class:`ActivityDetector` (pixel sizes are in sensor pixels)."""

    cell: int = 4  # cell size of the count image in pixels
    decay: float = 0.5  # weight of the previous activity image (0 = no temporal smoothing)
    threshold: float = 0.08  # smoothed events per pixel per window above which a cell is active
    close_iterations: int = 2  # binary closing iterations (3x3 cells) bridging gaps inside a person
    min_height: float = 16.0  # smallest box height kept, px
    min_area: float = 160.0  # smallest box area kept, px^2
    min_aspect: float = 0.6  # height / width range of a person box
    max_aspect: float = 8.0
    min_fill: float = 0.15  # active cells / box cells below this is scattered noise, not a body
    merge_gap: float = 6.0  # boxes closer than this (px) and overlapping horizontally are merged
    hot_pixel_rate: float = 0.8  # a cell active in more than this fraction of recent windows is "hot"
    hot_pixel_halflife: float = 60.0  # windows over which that fraction is averaged

    def __post_init__(self) -> None:
        if self.cell < 1:
            raise ValueError(f"detector cell must be >= 1 px, got {self.cell}")
        if not 0.0 <= self.decay < 1.0:
            raise ValueError(f"detector decay must be in [0, 1), got {self.decay}")
        if self.threshold <= 0:
            raise ValueError(f"detector threshold must be > 0, got {self.threshold}")
        if self.min_aspect <= 0 or self.max_aspect < self.min_aspect:
            raise ValueError(f"detector aspect range [{self.min_aspect}, {self.max_aspect}] is empty")


@dataclass(frozen=True)
class Detection:
    """One person candidate: box ``(x1, y1, x2, y2)`` in sensor pixels (x2/y2 exclusive), score 0..1."""

    box: tuple[float, float, float, float]
    score: float
    num_events: int

    @property
    def area(self) -> float:
        x1, y1, x2, y2 = self.box
        return max(0.0, x2 - x1) * max(0.0, y2 - y1)


def count_image(events: np.ndarray, sensor: SensorSize, cell: int) -> np.ndarray:
    """Events per ``cell`` x ``cell`` block, shape ``(ceil(H / cell), ceil(W / cell))`` float32."""
    gw = -(-sensor.width // cell)
    gh = -(-sensor.height // cell)
    if len(events) == 0:
        return np.zeros((gh, gw), np.float32)
    idx = (events["y"].astype(np.int64) // cell) * gw + events["x"].astype(np.int64) // cell
    return np.bincount(idx, minlength=gh * gw).astype(np.float32).reshape(gh, gw)


class ActivityDetector:
    """Stateful per-camera detector: call :meth:`update` once per window, in time order."""

    def __init__(self, sensor: SensorSize, config: DetectorConfig | None = None) -> None:
        self.sensor = sensor
        self.config = config or DetectorConfig()
        c = self.config.cell
        self.grid_hw = (-(-sensor.height // c), -(-sensor.width // c))
        self._activity = np.zeros(self.grid_hw, np.float32)
        self._hot_rate = np.zeros(self.grid_hw, np.float32)
        self._windows = 0
        self._structure = np.ones((3, 3), bool)

    def reset(self) -> None:
        self._activity[:] = 0
        self._hot_rate[:] = 0
        self._windows = 0

    def update(self, events: np.ndarray) -> list[Detection]:
        """Detections in this window (boxes sorted left to right)."""
        cfg = self.config
        counts = count_image(events, self.sensor, cfg.cell)
        self._activity *= cfg.decay
        self._activity += counts
        # normalise to "events per pixel per window" so the threshold does not depend on cell or decay
        smooth = ndimage.uniform_filter(self._activity, size=3, mode="constant") * ((1 - cfg.decay) / cfg.cell**2)
        active = smooth > cfg.threshold
        # hot cells: active nearly always, whether or not anyone is there
        raw_active = counts > 0
        alpha = 1.0 - 0.5 ** (1.0 / cfg.hot_pixel_halflife)
        self._hot_rate += alpha * (raw_active.astype(np.float32) - self._hot_rate)
        self._windows += 1
        if self._windows > cfg.hot_pixel_halflife:
            hot = self._hot_rate > cfg.hot_pixel_rate
            if hot.any():
                active &= ~ndimage.binary_dilation(hot, self._structure) | (smooth > 4 * cfg.threshold)
        if not active.any():
            return []
        if cfg.close_iterations:
            active = ndimage.binary_closing(active, self._structure, iterations=cfg.close_iterations, border_value=0)
        labels, n = ndimage.label(active, self._structure)
        if n == 0:
            return []
        # the 3x3 smoothing and the closing grow a blob by a cell or two: the box is fitted to the cells
        # of the component that are dense on their own (unfiltered), falling back to the whole component
        dense = labels * (self._activity * ((1 - cfg.decay) / cfg.cell**2) > 0.5 * cfg.threshold)
        tight = ndimage.find_objects(dense, max_label=n)
        slices = ndimage.find_objects(labels)
        boxes = [
            (s[1].start, s[0].start, s[1].stop, s[0].stop)
            for s in (t if t is not None else c for t, c in zip(tight, slices, strict=True))
            if s is not None
        ]
        boxes = _merge_boxes(boxes, cfg.merge_gap / cfg.cell)
        return self._to_detections(boxes, active, counts, smooth)

    def _to_detections(
        self,
        cell_boxes: list[tuple[int, int, int, int]],
        active: np.ndarray,
        counts: np.ndarray,
        smooth: np.ndarray,
    ) -> list[Detection]:
        cfg = self.config
        c = cfg.cell
        out: list[Detection] = []
        for x1, y1, x2, y2 in cell_boxes:
            px1, py1 = float(x1 * c), float(y1 * c)
            px2, py2 = float(min(x2 * c, self.sensor.width)), float(min(y2 * c, self.sensor.height))
            w, h = px2 - px1, py2 - py1
            if h < cfg.min_height or w * h < cfg.min_area:
                continue
            aspect = h / max(w, 1.0)
            # a person entering at the left/right edge is cut: do not reject it for being narrow-wide
            at_edge = px1 <= 0 or px2 >= self.sensor.width
            if aspect > cfg.max_aspect or (aspect < cfg.min_aspect and not at_edge):
                continue
            region = active[y1:y2, x1:x2]
            fill = float(region.mean())
            if fill < cfg.min_fill:
                continue
            strength = float(smooth[y1:y2, x1:x2][region].mean())
            score = fill * strength / (strength + cfg.threshold)
            out.append(Detection((px1, py1, px2, py2), float(np.clip(score, 0, 1)), int(counts[y1:y2, x1:x2].sum())))
        out.sort(key=lambda d: d.box[0])
        return out


def _merge_boxes(boxes: list[tuple[int, int, int, int]], gap: float) -> list[tuple[int, int, int, int]]:
    """Merge boxes that overlap horizontally (>50% of the narrower) and are within ``gap`` vertically.

    A head separated from the torso by a quiet neck, or legs by a quiet waist, come out as stacked
    components; people side by side do not overlap horizontally and stay apart.
    """
    merged = list(boxes)
    changed = True
    while changed and len(merged) > 1:
        changed = False
        for i in range(len(merged)):
            for j in range(i + 1, len(merged)):
                a, b = merged[i], merged[j]
                overlap_x = min(a[2], b[2]) - max(a[0], b[0])
                narrower = min(a[2] - a[0], b[2] - b[0])
                gap_y = max(a[1], b[1]) - min(a[3], b[3])
                if overlap_x > 0.5 * narrower and gap_y <= gap:
                    merged[i] = (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
                    del merged[j]
                    changed = True
                    break
            if changed:
                break
    return merged


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of boxes ``a`` (N,4) and ``b`` (M,4), xyxy -> (N, M)."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    ix1 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy1 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix2 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area_a = (a[:, 2] - a[:, 0]).clip(0) * (a[:, 3] - a[:, 1]).clip(0)
    area_b = (b[:, 2] - b[:, 0]).clip(0) * (b[:, 3] - b[:, 1]).clip(0)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
