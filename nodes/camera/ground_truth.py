"""Ground truth, in simulation only: how well the camera detects and which identity each sighting saw.

A simulated source offers the world's ground truth as a side channel (:data:`GroundTruthFn`); the
camera scores its detections and tracks against it (the demo summary's precision, recall and identity
measures) and hands the reference frame of each audit sample to the audit tap. Nothing of it is ever
published to the gallery, and a failing ground truth never takes the pipeline down.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from anonreid.events.detection import Detection, box_iou
from anonreid.nodes.tracking import Track

log = logging.getLogger(__name__)

#: a detection and a ground-truth box match when their IoU is at least this: the PASCAL VOC criterion the
#: demo summary's and ``anonreid bench camera``'s precision / recall are reported at. A measurement
#: convention, not a setting (a run at another value would not compare with the recorded figures), so it is
#: a constant here, in the one module that scores detections, and not in the config tree
MATCH_IOU = 0.5


class TruthWindow(Protocol):
    """Ground truth of one window (``events.world.live.GroundTruthWindow``): boxes (K, 4) and identities;
    the audit tap also reads its ``reference_frame`` when the frames were asked for."""

    @property
    def start_us(self) -> int: ...
    @property
    def boxes(self) -> np.ndarray: ...
    @property
    def identities(self) -> Sequence[str]: ...


#: ground truth of the windows starting in ``[t0_us, t1_us)`` (with reference frames when ``frames``)
GroundTruthFn = Callable[[int, int, bool], Sequence[TruthWindow]]


@dataclass
class EvalCounts:
    """Detection quality against ground truth (simulation only)."""

    gt_boxes: int = 0
    detections: int = 0
    matched: int = 0


class GroundTruth:
    """Scores one camera's detections and tracks against ``truth`` (None: no ground truth, nothing scored).

    ``observations``: (ground-truth identity or None, sighting id or None) per box per window, bounded.
    """

    def __init__(self, camera_id: str, truth: GroundTruthFn | None, max_observations: int = 500_000) -> None:
        self.camera_id = camera_id
        self.truth = truth
        self.counts = EvalCounts()
        self.observations: collections.deque[tuple[str | None, str | None]] = collections.deque(
            maxlen=max_observations
        )

    def for_windows(self, first_start_us: int, last_start_us: int) -> dict[int, TruthWindow] | None:
        """Ground truth of the windows starting in ``[first_start_us, last_start_us]``, by start; None
        without ground truth (or when it fails: logged)."""
        if self.truth is None:
            return None
        try:
            windows = self.truth(first_start_us, last_start_us + 1, False)
        except Exception:  # evaluation must never take the pipeline down
            log.exception("camera %s: ground truth unavailable", self.camera_id)
            return None
        return {int(g.start_us): g for g in windows}

    def reference(self, start_us: int) -> TruthWindow | None:
        """Ground truth with the reference frame of one window (audit samples in simulation)."""
        if self.truth is None:
            return None
        try:
            windows = self.truth(start_us, start_us + 1, True)
        except Exception:
            log.exception("camera %s: reference frame unavailable", self.camera_id)
            return None
        return windows[0] if windows else None

    def score_window(
        self, detections: list[Detection], active: list[Track], gt: TruthWindow | None,
        sighting_id: Callable[[Track], str],
    ) -> None:
        """Count one window's detections against ``gt`` and record which sighting (``sighting_id`` of the
        matched track) saw each ground-truth identity, and the tracks that matched nobody."""
        gt_boxes = np.zeros((0, 4)) if gt is None else np.asarray(gt.boxes, np.float64).reshape(-1, 4)
        gt_ids = [] if gt is None else [str(i) for i in gt.identities]
        keep = np.isfinite(gt_boxes).all(axis=1)
        gt_boxes = gt_boxes[keep]
        gt_ids = [gt_ids[i] for i in np.flatnonzero(keep)]
        det_boxes = np.array([d.box for d in detections], np.float64).reshape(-1, 4)
        self.counts.gt_boxes += len(gt_boxes)
        self.counts.detections += len(det_boxes)
        if len(gt_boxes) and len(det_boxes):
            self.counts.matched += len(_match_pairs(box_iou(gt_boxes, det_boxes), MATCH_IOU))
        tracks = [t for t in active if t.matched or t.in_blob]  # a held box is the camera's claim too
        tr_boxes = np.array([t.box for t in tracks], np.float64).reshape(-1, 4)
        pairs: dict[int, int] = {}
        if len(gt_boxes) and len(tracks):
            pairs = _match_pairs(box_iou(gt_boxes, tr_boxes), MATCH_IOU)
        for g, gid in enumerate(gt_ids):
            t = pairs.get(g)
            self.observations.append((gid, sighting_id(tracks[t]) if t is not None else None))
        matched_tracks = set(pairs.values())
        for t, tr in enumerate(tracks):
            if t not in matched_tracks:
                self.observations.append((None, sighting_id(tr)))

    def detection_summary(self) -> dict[str, float]:
        c = self.counts
        return {
            "gt_boxes": c.gt_boxes,
            "detections": c.detections,
            "matched": c.matched,
            "precision": c.matched / c.detections if c.detections else 0.0,
            "recall": c.matched / c.gt_boxes if c.gt_boxes else 0.0,
        }


def _match_pairs(iou: np.ndarray, threshold: float) -> dict[int, int]:
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(-iou)
    return {int(r): int(c) for r, c in zip(rows, cols, strict=True) if iou[r, c] >= threshold}
