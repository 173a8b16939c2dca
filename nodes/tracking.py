"""Per-camera tracklets from per-window detections: IoU matching with constant-velocity prediction.

Each window the tracker predicts every live track one step ahead (constant velocity in box-centre
coordinates), matches predictions to detections by IoU with the Hungarian algorithm
(``scipy.optimize.linear_sum_assignment``), and applies hysteresis: a new track is *tentative* until it
has been matched ``min_hits`` times (one-off noise blobs never become tracklets), and a confirmed track
survives ``max_misses`` unmatched windows on its prediction (a person briefly producing few events, or
occluded, keeps their tracklet) before it ends.

Two people who walk close together become one blob, so one detection, which would continue one of
their tracks (whoever is still visible when the blob shrinks) while the other ends: an identity switch
and a fragment. A detection that covers at least ``hold_overlap`` of the predicted boxes of two or more
confirmed tracks is a *blob*: it continues none of them and starts no track; each of them is *held*,
its box predicted at its own velocity and kept inside the blob, the windows held not counting against
``max_misses`` (for up to ``max_hold_windows``). When the blob splits or shrinks, the detections match
the held boxes as any others, so each person gets their own tracklet back. Nothing is embedded from a
blob, whose box mixes two people's appearance (the camera embeds matched tracks only).

A window in which the sensor reported nothing at all is a gap in the recording, not an absence: a real
sensor always fires some noise, so an empty window means no data (a recording with missing chunks, or
a list that takes every Nth window). :meth:`Tracker.update` with ``observed=False`` leaves the tracks as
they are (no prediction step, no miss), so a person seen every few windows keeps one tracklet; a gap
longer than ``max_gap_windows`` ends every track, as a long absence would.

Tracklet ids are derived from the stream time of the track's birth (``<birth_us>.<k>``), not from a
process-local counter, so a node that restarts and replays the same stream gives the same ids, and the
camera's sighting ids (``<camera>-<tracklet>-<seq>``) stay valid idempotency keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from anonreid.events.detection import Detection, box_cover, box_iou
from anonreid.orchestration.config import TrackerConfig

Box = tuple[float, float, float, float]

#: the config tree's defaults (``camera.tracker``), which a tracker built without a config takes
DEFAULTS = TrackerConfig()


@dataclass
class Track:
    """One tracklet: its current box, motion and the statistics a sighting summarises."""

    track_id: str
    box: Box
    start_us: int
    last_us: int  # end of the last window in which the track was matched
    score: float
    velocity: tuple[float, float] = (0.0, 0.0)  # box-centre velocity, px per window
    hits: int = 1
    misses: int = 0  # unmatched windows in a row
    held: int = 0  # of those, windows held inside a blob (module docstring)
    in_blob: bool = False  # held inside a blob in the latest window
    confirmed: bool = False
    matched: bool = True  # matched in the latest window
    num_boxes: int = 1
    area_sum: float = 0.0
    score_sum: float = 0.0
    first_centre: tuple[float, float] = (0.0, 0.0)
    last_centre: tuple[float, float] = (0.0, 0.0)
    first_seen_us: int = 0  # start of the first matched window (for the mean velocity)
    extra: dict = field(default_factory=dict)  # owner's per-track state (the camera node's embeddings)

    @property
    def mean_area(self) -> float:
        return self.area_sum / max(self.num_boxes, 1)

    @property
    def mean_score(self) -> float:
        return self.score_sum / max(self.num_boxes, 1)

    def mean_velocity_px_s(self) -> tuple[float, float]:
        """Mean centre velocity over the tracklet's life, px/s."""
        dt = (self.last_us - self.first_seen_us) / 1e6
        if dt <= 0:
            return 0.0, 0.0
        return (
            (self.last_centre[0] - self.first_centre[0]) / dt,
            (self.last_centre[1] - self.first_centre[1]) / dt,
        )


@dataclass(frozen=True)
class TrackerUpdate:
    """Result of one window: confirmed live tracks (``matched`` tells which were seen) and ended ones."""

    active: list[Track]
    ended: list[Track]


def _centre(box: Box) -> tuple[float, float]:
    return (box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0


def _shift(box: Box, dx: float, dy: float) -> Box:
    return box[0] + dx, box[1] + dy, box[2] + dx, box[3] + dy


def _inside_box(box: Box, host: np.ndarray) -> Box:
    """``box`` moved the least distance that puts it inside ``host`` (per axis; centred on the host where
    it is the longer)."""

    def shift(lo: float, hi: float, host_lo: float, host_hi: float) -> float:
        if hi - lo >= host_hi - host_lo:
            return (host_lo + host_hi - lo - hi) / 2.0
        return max(host_lo - lo, 0.0) + min(host_hi - hi, 0.0)

    x0, y0, x1, y1 = (float(v) for v in host)
    return _shift(box, shift(box[0], box[2], x0, x1), shift(box[1], box[3], y0, y1))


class Tracker:
    """Stateful per-camera tracker: call :meth:`update` once per window, in time order.

    The parameters are those of the config section ``camera.tracker`` (:class:`TrackerConfig`, where
    each is described and validated); :meth:`from_config` builds a tracker from it.
    """

    def __init__(
        self,
        *,
        iou_threshold: float = DEFAULTS.iou_threshold,
        min_hits: int = DEFAULTS.min_hits,
        max_misses: int = DEFAULTS.max_misses,
        velocity_smoothing: float = DEFAULTS.velocity_smoothing,
        max_tracks: int = DEFAULTS.max_tracks,
        max_gap_windows: int = DEFAULTS.max_gap_windows,
        hold_overlap: float = DEFAULTS.hold_overlap,
        max_hold_windows: int = DEFAULTS.max_hold_windows,
    ) -> None:
        self.iou_threshold = iou_threshold
        self.min_hits = min_hits
        self.max_misses = max_misses
        self.velocity_smoothing = velocity_smoothing
        self.max_tracks = max_tracks
        self.max_gap_windows = max_gap_windows
        self.hold_overlap = hold_overlap
        self.max_hold_windows = max_hold_windows
        self.tracks: list[Track] = []
        self.gap_windows = 0  # consecutive windows without data so far

    @classmethod
    def from_config(cls, config: TrackerConfig) -> Tracker:
        return cls(**config.model_dump())

    def predicted_boxes(self) -> np.ndarray:
        return np.array(
            [_shift(t.box, *t.velocity) for t in self.tracks], np.float64
        ).reshape(-1, 4)

    def update(
        self, detections: list[Detection], window_start_us: int, window_end_us: int, observed: bool = True
    ) -> TrackerUpdate:
        """Track one window's detections; ``observed=False``: the window had no data (module docstring)."""
        if not observed:
            self.gap_windows += 1
            if self.gap_windows > self.max_gap_windows:
                return TrackerUpdate([], self.flush())
            for track in self.tracks:
                track.matched = track.in_blob = False
            return TrackerUpdate([t for t in self.tracks if t.confirmed], [])
        self.gap_windows = 0
        predicted = self.predicted_boxes()
        det_boxes = np.array([d.box for d in detections], np.float64).reshape(-1, 4)
        blobs = self._blobs(predicted, det_boxes)
        matches: list[tuple[int, int]] = []
        if len(self.tracks) and len(detections):
            iou = box_iou(predicted, det_boxes)
            iou[list(blobs)] = 0.0  # a held track and a blob take no part in the matching
            iou[:, list(set(blobs.values()))] = 0.0
            # confirmed tracks win ties against tentative ones
            bonus = np.array([0.01 if t.confirmed else 0.0 for t in self.tracks])[:, None]
            rows, cols = linear_sum_assignment(-(iou + bonus * (iou > 0)))
            matches = [(r, c) for r, c in zip(rows, cols, strict=True) if iou[r, c] >= self.iou_threshold]
        matched_tracks = {r for r, _ in matches}
        matched_dets = {c for _, c in matches} | set(blobs.values())
        for r, c in matches:
            self._observe(self.tracks[r], detections[c], window_end_us)
        ended: list[Track] = []
        survivors: list[Track] = []
        for i, track in enumerate(self.tracks):
            track.in_blob = i in blobs
            if i not in matched_tracks:
                track.matched = False
                track.misses += 1
                track.box = tuple(predicted[i])  # type: ignore[assignment]
                if i in blobs:  # held: its own prediction, kept inside the blob
                    track.held += 1
                    track.box = _inside_box(track.box, det_boxes[blobs[i]])
                limit = self.max_misses if track.confirmed else 0
                if track.misses - track.held > limit or track.held > self.max_hold_windows:
                    if track.confirmed:
                        ended.append(track)
                    continue
            survivors.append(track)
        k = 0
        for c, det in enumerate(detections):
            if c in matched_dets or len(survivors) >= self.max_tracks:
                continue
            survivors.append(self._birth(det, window_start_us, window_end_us, k))
            k += 1
        self.tracks = survivors
        return TrackerUpdate([t for t in self.tracks if t.confirmed], ended)

    def flush(self) -> list[Track]:
        """End every confirmed track (end of stream); returns them."""
        ended = [t for t in self.tracks if t.confirmed]
        self.tracks = []
        return ended

    def _blobs(self, predicted: np.ndarray, det_boxes: np.ndarray) -> dict[int, int]:
        """The blobs of this window: detections that cover at least ``hold_overlap`` of the predicted boxes
        of two or more confirmed tracks. Returns held track index -> its blob's detection index."""
        if self.max_hold_windows <= 0 or not len(det_boxes):
            return {}
        confirmed = [i for i, t in enumerate(self.tracks) if t.confirmed]
        if len(confirmed) < 2:
            return {}
        cover = box_cover(predicted[confirmed], det_boxes)  # share of each predicted box inside each detection
        best = cover.argmax(1)
        inside = cover[np.arange(len(confirmed)), best] >= self.hold_overlap
        counts = np.bincount(best[inside], minlength=len(det_boxes))
        return {confirmed[k]: int(best[k]) for k in range(len(confirmed)) if inside[k] and counts[best[k]] >= 2}

    def _birth(self, det: Detection, start_us: int, end_us: int, k: int) -> Track:
        centre = _centre(det.box)
        track = Track(
            track_id=f"{start_us}.{k}",
            box=det.box,
            start_us=start_us,
            last_us=end_us,
            score=det.score,
            area_sum=det.area,
            score_sum=det.score,
            first_centre=centre,
            last_centre=centre,
            first_seen_us=end_us,
        )
        track.confirmed = track.hits >= self.min_hits
        return track

    def _observe(self, track: Track, det: Detection, end_us: int) -> None:
        a = self.velocity_smoothing
        cx, cy = _centre(det.box)
        px, py = track.last_centre  # the last observed centre (track.box may be a prediction)
        # misses in between: the displacement spans several windows
        steps = track.misses + 1
        vx, vy = (cx - px) / steps, (cy - py) / steps
        if track.hits == 1:
            track.velocity = (vx, vy)
        else:
            track.velocity = (a * vx + (1 - a) * track.velocity[0], a * vy + (1 - a) * track.velocity[1])
        track.box = det.box
        track.score = det.score
        track.hits += 1
        track.misses = track.held = 0
        track.matched = True
        track.last_us = end_us
        track.num_boxes += 1
        track.area_sum += det.area
        track.score_sum += det.score
        track.last_centre = (cx, cy)
        if track.hits >= self.min_hits:
            track.confirmed = True
