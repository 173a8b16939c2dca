"""People boxes from event activity, with no ground truth at run time.

A person walking in front of a static event camera is a dense, connected blob of events; the
background gives sparse noise (shot noise, leak events, hot pixels). The detector turns each window's
events into a coarse count image (``cell`` x ``cell`` pixel cells), smooths it in time with an
exponential decay (a person who slows down for a few windows keeps their blob) and in space with a
3x3 box filter (isolated noise events fall below the threshold), thresholds it, closes small gaps
(legs and torso often fire separately), labels connected components (``scipy.ndimage``) and keeps the
components whose size and aspect ratio look like a person. Pixels that fire in almost every window
(hot pixels) are learned online and masked out. A noisy sensor (shot noise of a pixel or more a second,
inside the published range of real sensors) would put its whole field above the threshold: the
detector estimates the background rate from the median cell's activity (people cover few cells) and
raises the threshold to ``noise_factor`` times it when that is higher (on a quiet sensor it is not,
and nothing changes).

Everything is vectorised numpy on the cell grid (80 x 60 cells for the 320 x 240 default sensor), so a
window costs well under a millisecond of the camera node's budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from anonreid.events.types import SensorSize
from anonreid.orchestration.config import DetectorConfig

#: the config tree's defaults (``camera.detector``), which a detector built without a config takes
DEFAULTS = DetectorConfig()


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
    """Stateful per-camera detector: call :meth:`update` once per window, in time order.

    The parameters are those of the config section ``camera.detector`` (:class:`DetectorConfig`, where
    each is described and validated); :meth:`from_config` builds a detector from it.
    """

    def __init__(
        self,
        sensor: SensorSize,
        *,
        cell: int = DEFAULTS.cell,
        decay: float = DEFAULTS.decay,
        threshold: float = DEFAULTS.threshold,
        close_iterations: int = DEFAULTS.close_iterations,
        min_height: float = DEFAULTS.min_height,
        min_area: float = DEFAULTS.min_area,
        min_aspect: float = DEFAULTS.min_aspect,
        max_aspect: float = DEFAULTS.max_aspect,
        min_fill: float = DEFAULTS.min_fill,
        merge_gap: float = DEFAULTS.merge_gap,
        merge_overlap: float = DEFAULTS.merge_overlap,
        hot_pixel_rate: float = DEFAULTS.hot_pixel_rate,
        hot_pixel_halflife: float = DEFAULTS.hot_pixel_halflife,
        noise_factor: float = DEFAULTS.noise_factor,
    ) -> None:
        self.sensor = sensor
        self.cell = cell
        self.decay = decay
        self.threshold = threshold
        self.close_iterations = close_iterations
        self.min_height = min_height
        self.min_area = min_area
        self.min_aspect = min_aspect
        self.max_aspect = max_aspect
        self.min_fill = min_fill
        self.merge_gap = merge_gap
        self.merge_overlap = merge_overlap
        self.hot_pixel_rate = hot_pixel_rate
        self.hot_pixel_halflife = hot_pixel_halflife
        self.noise_factor = noise_factor
        self.grid_hw = (-(-sensor.height // cell), -(-sensor.width // cell))
        self._activity = np.zeros(self.grid_hw, np.float32)
        self._hot_rate = np.zeros(self.grid_hw, np.float32)
        self._windows = 0
        self._structure = np.ones((3, 3), bool)

    @classmethod
    def from_config(cls, sensor: SensorSize, config: DetectorConfig) -> ActivityDetector:
        return cls(sensor, **config.model_dump())

    def reset(self) -> None:
        self._activity[:] = 0
        self._hot_rate[:] = 0
        self._windows = 0

    def update(self, events: np.ndarray) -> list[Detection]:
        """Detections in this window (boxes sorted left to right)."""
        counts = count_image(events, self.sensor, self.cell)
        self._activity *= self.decay
        self._activity += counts
        # normalise to "events per pixel per window" so the threshold does not depend on cell or decay
        smooth = ndimage.uniform_filter(self._activity, size=3, mode="constant") * ((1 - self.decay) / self.cell**2)
        # hot cells: active nearly always, whether or not anyone is there
        raw_active = counts > 0
        alpha = 1.0 - 0.5 ** (1.0 / self.hot_pixel_halflife)
        self._hot_rate += alpha * (raw_active.astype(np.float32) - self._hot_rate)
        self._windows += 1
        threshold = max(self.threshold, self.noise_factor * self.background_rate())
        active = smooth > threshold
        if self._windows > self.hot_pixel_halflife:
            hot = self._hot_rate > self.hot_pixel_rate
            if hot.any():
                active &= ~ndimage.binary_dilation(hot, self._structure) | (smooth > 4 * threshold)
        if not active.any():
            return []
        if self.close_iterations:
            active = ndimage.binary_closing(active, self._structure, iterations=self.close_iterations, border_value=0)
        labels, n = ndimage.label(active, self._structure)
        if n == 0:
            return []
        # the 3x3 smoothing and the closing grow a blob by a cell or two: the box is fitted to the cells
        # of the component that are dense on their own (unfiltered), falling back to the whole component
        dense = labels * (self._activity * ((1 - self.decay) / self.cell**2) > 0.5 * threshold)
        tight = ndimage.find_objects(dense, max_label=n)
        slices = ndimage.find_objects(labels)
        boxes = [
            (s[1].start, s[0].start, s[1].stop, s[0].stop)
            for s in (t if t is not None else c for t, c in zip(tight, slices, strict=True))
            if s is not None
        ]
        boxes = _merge_boxes(boxes, self.merge_gap / self.cell, self.merge_overlap)
        return self._to_detections(boxes, active, counts, smooth, threshold)

    def background_rate(self) -> float:
        """The sensor's background events per pixel per window: the median cell's share of windows with an
        event (learned with the hot-pixel rate), read as a Poisson rate (0 until it has been learned)."""
        if self.noise_factor <= 0 or self._windows <= self.hot_pixel_halflife:
            return 0.0
        warmed = 1.0 - 0.5 ** (self._windows / self.hot_pixel_halflife)  # the average started at 0
        p = min(float(np.median(self._hot_rate)) / warmed, 0.999)
        return -math.log1p(-p) / self.cell**2

    def _to_detections(
        self,
        cell_boxes: list[tuple[int, int, int, int]],
        active: np.ndarray,
        counts: np.ndarray,
        smooth: np.ndarray,
        threshold: float,
    ) -> list[Detection]:
        c = self.cell
        out: list[Detection] = []
        for x1, y1, x2, y2 in cell_boxes:
            px1, py1 = float(x1 * c), float(y1 * c)
            px2, py2 = float(min(x2 * c, self.sensor.width)), float(min(y2 * c, self.sensor.height))
            w, h = px2 - px1, py2 - py1
            if h < self.min_height or w * h < self.min_area:
                continue
            aspect = h / max(w, 1.0)
            # a person entering at the left/right edge is cut: do not reject it for being narrow-wide
            at_edge = px1 <= 0 or px2 >= self.sensor.width
            if aspect > self.max_aspect or (aspect < self.min_aspect and not at_edge):
                continue
            region = active[y1:y2, x1:x2]
            fill = float(region.mean())
            if fill < self.min_fill:
                continue
            strength = float(smooth[y1:y2, x1:x2][region].mean())
            score = fill * strength / (strength + threshold)
            out.append(Detection((px1, py1, px2, py2), float(np.clip(score, 0, 1)), int(counts[y1:y2, x1:x2].sum())))
        out.sort(key=lambda d: d.box[0])
        return out


def _merge_boxes(
    boxes: list[tuple[int, int, int, int]], gap: float, overlap: float
) -> list[tuple[int, int, int, int]]:
    """Merge boxes that overlap horizontally (more than ``overlap`` of the narrower) and are within ``gap``
    vertically.

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
                if overlap_x > overlap * narrower and gap_y <= gap:
                    merged[i] = (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
                    del merged[j]
                    changed = True
                    break
            if changed:
                break
    return merged


def merge_overlapping_boxes(boxes: list[list[int]]) -> list[list[int]]:
    """Overlapping integer boxes [x0, y0, x1, y1] (ends exclusive) merged into their bounding box until none
    overlap, sorted (the simulator's event-rendering regions, the adversary's reconstruction tiles)."""
    boxes = [b[:] for b in boxes]
    merged = True
    while merged:
        merged = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]:
                    boxes[i] = [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]
                    del boxes[j]
                    merged = True
                    break
            if merged:
                break
    return sorted(boxes)


def _intersections(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairwise intersection areas of boxes ``a`` (N,4) and ``b`` (M,4), xyxy -> (N, M), and their areas."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    ix1 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy1 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix2 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area_a = (a[:, 2] - a[:, 0]).clip(0) * (a[:, 3] - a[:, 1]).clip(0)
    area_b = (b[:, 2] - b[:, 0]).clip(0) * (b[:, 3] - b[:, 1]).clip(0)
    return inter, area_a, area_b


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of boxes ``a`` (N,4) and ``b`` (M,4), xyxy -> (N, M)."""
    inter, area_a, area_b = _intersections(a, b)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def box_cover(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise share of each box of ``a`` (N,4) that lies inside each box of ``b`` (M,4) -> (N, M)
    (0 for an empty box of ``a``)."""
    inter, area_a, _ = _intersections(a, b)
    return np.where(area_a[:, None] > 0, inter / np.where(area_a > 0, area_a, 1)[:, None], 0.0)
