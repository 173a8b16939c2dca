"""Detection and tracking on synthetic event streams: moving rectangles of events plus noise."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from anonreid.events.detection import ActivityDetector, box_cover, box_iou
from anonreid.events.types import SensorSize, make_events
from anonreid.nodes.tracking import Tracker
from anonreid.orchestration.config import DetectorConfig

SENSOR = SensorSize(320, 240)
WINDOW_US = 33_333


@dataclass
class Walker:
    x: float  # left edge at t=0, px
    y: float
    w: float
    h: float
    vx: float  # px per window
    start: int = 0  # first window in view
    stop: int = 10**9

    def box(self, k: int) -> tuple[float, float, float, float]:
        x1 = self.x + self.vx * k
        return x1, self.y, x1 + self.w, self.y + self.h


def synthetic_stream(
    walkers: list[Walker],
    num_windows: int,
    rng: np.random.Generator,
    density: float = 0.5,
    noise_per_window: int = 300,
    hot_pixels: int = 3,
) -> tuple[list[np.ndarray], list[list[tuple[float, float, float, float]]]]:
    """Per window: event array and the ground-truth boxes of walkers fully or partly in view."""
    hot = rng.integers(0, [SENSOR.width, SENSOR.height], size=(hot_pixels, 2))
    windows, truth = [], []
    for k in range(num_windows):
        xs, ys, gt = [], [], []
        for wk in walkers:
            if not wk.start <= k < wk.stop:
                continue
            x1, y1, x2, y2 = wk.box(k)
            cx1, cx2 = max(x1, 0), min(x2, SENSOR.width)
            if cx2 - cx1 < 4:
                continue
            gt.append((cx1, y1, cx2, y2))
            n = int(density * (cx2 - cx1) * (y2 - y1))
            xs.append(rng.uniform(cx1, cx2, n))
            ys.append(rng.uniform(y1, y2, n))
        xs.append(rng.uniform(0, SENSOR.width, noise_per_window))
        ys.append(rng.uniform(0, SENSOR.height, noise_per_window))
        xs.append(np.repeat(hot[:, 0], 5).astype(float))
        ys.append(np.repeat(hot[:, 1], 5).astype(float))
        x = np.clip(np.floor(np.concatenate(xs)), 0, SENSOR.width - 1)
        y = np.clip(np.floor(np.concatenate(ys)), 0, SENSOR.height - 1)
        t = np.sort(rng.integers(k * WINDOW_US, (k + 1) * WINDOW_US, len(x)))
        p = rng.choice([-1, 1], len(x))
        windows.append(make_events(t, x, y, p, sensor=SENSOR))
        truth.append(gt)
    return windows, truth


def test_detector_finds_separated_people_and_ignores_noise() -> None:
    rng = np.random.default_rng(1)
    walkers = [Walker(20, 60, 30, 90, 1.5), Walker(200, 100, 26, 80, 0.8)]
    windows, truth = synthetic_stream(walkers, 120, rng)
    det = ActivityDetector(SENSOR)
    hits = misses = false_pos = 0
    for k, (ev, gt) in enumerate(zip(windows, truth, strict=True)):
        boxes = det.update(ev)
        if k < 5:  # temporal smoothing warms up
            continue
        iou = box_iou(np.array(gt), np.array([b.box for b in boxes]).reshape(-1, 4))
        matched = (iou >= 0.5).any(axis=1)
        hits += int(matched.sum())
        misses += int((~matched).sum())
        false_pos += int((iou.max(axis=0, initial=0) < 0.5).sum())
        for b in boxes:
            assert 0.0 <= b.score <= 1.0 and b.num_events > 0
    recall = hits / (hits + misses)
    precision = hits / max(hits + false_pos, 1)
    assert recall > 0.95, recall
    assert precision > 0.95, precision


def test_detector_pure_noise_and_empty_windows_give_nothing() -> None:
    rng = np.random.default_rng(2)
    windows, _ = synthetic_stream([], 100, rng, noise_per_window=800, hot_pixels=10)
    det = ActivityDetector(SENSOR)
    found = sum(len(det.update(ev)) for ev in windows)
    assert found == 0
    assert det.update(make_events([], [], [], [])) == []


def test_detector_config_is_validated() -> None:
    with pytest.raises(ValueError, match="decay"):
        DetectorConfig(decay=1.0)
    with pytest.raises(ValueError, match="aspect"):
        DetectorConfig(min_aspect=3, max_aspect=2)


def test_box_iou() -> None:
    a = np.array([[0, 0, 10, 10], [0, 0, 0, 0]])
    b = np.array([[5, 0, 15, 10], [0, 0, 10, 10]])
    np.testing.assert_allclose(box_iou(a, b), [[1 / 3, 1.0], [0.0, 0.0]])


def test_box_cover_is_the_share_of_each_box_inside_the_other() -> None:
    a = np.array([[0, 0, 10, 10], [0, 0, 0, 0], [2, 2, 4, 4]])
    b = np.array([[5, 0, 15, 10], [0, 0, 20, 20]])
    np.testing.assert_allclose(box_cover(a, b), [[0.5, 1.0], [0.0, 0.0], [0.0, 1.0]])
    np.testing.assert_allclose(box_cover(b, a), [[0.5, 0.0, 0.0], [0.25, 0.0, 0.01]])


def test_tracker_keeps_ids_through_crossing_and_gaps() -> None:
    """Two people cross paths (at different heights); one goes quiet for 4 windows mid-stream."""
    rng = np.random.default_rng(3)
    a = Walker(10, 40, 28, 80, 3.0)
    b = Walker(280, 150, 28, 80, -3.0)
    windows, _truth = synthetic_stream([a, b], 90, rng)
    for k in range(50, 54):  # b "stands still" and produces almost no events
        keep = ~((windows[k]["y"] >= 150) & (windows[k]["x"] >= b.box(k)[0] - 1) & (windows[k]["x"] < b.box(k)[2] + 1))
        windows[k] = windows[k][keep]
    det = ActivityDetector(SENSOR, decay=0.0)
    tracker = Tracker(max_misses=6)
    ids_a, ids_b, ended = set(), set(), []
    for k, ev in enumerate(windows):
        upd = tracker.update(det.update(ev), k * WINDOW_US, (k + 1) * WINDOW_US)
        ended += upd.ended
        for tr in upd.active:
            if not tr.matched:
                continue
            iou = box_iou(np.array([tr.box]), np.array([a.box(k), b.box(k)]))[0]
            if iou[0] > 0.5:
                ids_a.add(tr.track_id)
            elif iou[1] > 0.5:
                ids_b.add(tr.track_id)
    ended += tracker.flush()
    assert len(ids_a) == 1 and len(ids_b) == 1 and ids_a != ids_b
    assert {t.track_id for t in ended} == ids_a | ids_b
    tr_a = next(t for t in ended if t.track_id in ids_a)
    vx, vy = tr_a.mean_velocity_px_s()
    assert vx == pytest.approx(3.0 * 1e6 / WINDOW_US, rel=0.15)
    assert abs(vy) < 10
    assert tr_a.num_boxes > 60 and tr_a.mean_area == pytest.approx(28 * 80, rel=0.35)


def test_tracker_hysteresis_blips_never_confirm() -> None:
    from anonreid.events.detection import Detection

    tracker = Tracker(min_hits=3)
    blip = Detection((10.0, 10.0, 40.0, 90.0), 0.9, 100)
    # two windows on, then gone: never confirmed, never reported
    for k in range(2):
        assert tracker.update([blip], k * WINDOW_US, (k + 1) * WINDOW_US).active == []
    upd = tracker.update([], 2 * WINDOW_US, 3 * WINDOW_US)
    assert upd.active == [] and upd.ended == [] and tracker.tracks == []


def test_tracker_ids_are_deterministic() -> None:
    rng = np.random.default_rng(4)
    windows, _ = synthetic_stream([Walker(10, 40, 28, 80, 2.0), Walker(200, 120, 28, 80, -2.0)], 40, rng)

    def run() -> list[str]:
        det, tracker = ActivityDetector(SENSOR), Tracker()
        for k, ev in enumerate(windows):
            tracker.update(det.update(ev), k * WINDOW_US, (k + 1) * WINDOW_US)
        return sorted(t.track_id for t in tracker.flush())

    first = run()
    assert len(first) == 2 and first == run()


def test_a_noisy_sensor_raises_the_threshold_to_its_background_rate() -> None:
    """Shot noise of 2.3 Hz a pixel (the rate the randomised world drew for seed 2's cam1; real low-light
    sensors reach 5 Hz) puts a fixed threshold's whole field above it; the detector learns the background
    rate and still finds the walkers (boxes a little loose in the noise: IoU 0.5 misses a few), with few
    false boxes instead of a flood. A quiet sensor keeps the fixed threshold."""
    noise = int(2.3 * WINDOW_US / 1e6 * SENSOR.width * SENSOR.height)  # ~5,900 events a window
    walkers = [Walker(20, 60, 30, 90, 1.5), Walker(200, 100, 26, 80, 0.8)]
    windows, truth = synthetic_stream(walkers, 160, np.random.default_rng(3), noise_per_window=noise)

    def score(det: ActivityDetector) -> tuple[float, int]:
        hits = misses = false_pos = 0
        for k, (ev, gt) in enumerate(zip(windows, truth, strict=True)):
            boxes = det.update(ev)
            if k < 70:  # the background rate is learned over the hot-pixel half-life (60 windows)
                continue
            iou = box_iou(np.array(gt), np.array([b.box for b in boxes]).reshape(-1, 4))
            hits += int((iou >= 0.5).any(axis=1).sum())
            misses += int((~(iou >= 0.5).any(axis=1)).sum())
            false_pos += int((iou.max(axis=0, initial=0) < 0.5).sum())
        return hits / (hits + misses), false_pos

    fixed = ActivityDetector(SENSOR, noise_factor=0.0)
    recall, false_pos = score(fixed)
    assert recall < 0.5 or false_pos > 50, (recall, false_pos)  # the fixed threshold drowns in the noise
    adaptive = ActivityDetector(SENSOR)
    recall, false_pos = score(adaptive)
    assert recall > 0.8 and false_pos < 15, (recall, false_pos)
    assert adaptive.background_rate() == pytest.approx(2.3 * WINDOW_US / 1e6, rel=0.15)
    # on a quiet sensor (the fixed world's 0.1 Hz) the threshold stays the configured one
    quiet, _ = synthetic_stream([], 80, np.random.default_rng(4), noise_per_window=256)
    det = ActivityDetector(SENSOR)
    for ev in quiet:
        det.update(ev)
    assert 0 < det.noise_factor * det.background_rate() < det.threshold


def _crossing(tracker: Tracker, speed: float) -> tuple[dict[str, set[str]], list[str]]:
    """Person a walks right and b left at ``speed`` px a window, b a little further down; while their
    boxes are within 4 px of each other the detector sees one blob. Returns, per person, the ids of the
    tracks that matched their own detection, and the ids of the tracks that ended."""
    from anonreid.events.detection import Detection

    ids: dict[str, set[str]] = {"a": set(), "b": set()}
    ended: list[str] = []
    for k in range(int(260 / speed)):
        ax, bx = 20.0 + speed * k, 270.0 - speed * k
        a, b = (ax, 60.0, ax + 30, 140.0), (bx, 66.0, bx + 30, 146.0)
        apart = abs(ax - bx) >= 34
        dets = [Detection(a, 0.9, 900), Detection(b, 0.9, 900)] if apart else [
            Detection((min(ax, bx), 60.0, max(ax, bx) + 30, 146.0), 0.9, 1800)]
        upd = tracker.update(dets, k * WINDOW_US, (k + 1) * WINDOW_US)
        ended += [t.track_id for t in upd.ended]
        for tr in upd.active:
            if tr.matched and apart:
                who = "a" if box_iou(np.array([tr.box]), np.array([a]))[0, 0] > 0.5 else "b"
                ids[who].add(tr.track_id)
    ended += [t.track_id for t in tracker.flush()]
    return ids, ended


def test_two_people_crossing_in_one_blob_keep_their_tracks() -> None:
    """Crossing slowly (0.5 px a window each: one blob for 2.3 s), two people are one detection; it continues
    neither, both are held inside it at their own velocity, and at the split each gets their own track
    back (none ends early, none is born)."""
    ids, ended = _crossing(Tracker(max_misses=8), speed=0.5)
    assert len(ids["a"]) == 1 and len(ids["b"]) == 1 and ids["a"] != ids["b"]
    assert sorted(ended) == sorted(ids["a"] | ids["b"])
    # without holding, the blob continues one track and the other ends after max_misses: at the split
    # one of them comes out of the blob as a new track
    ids, ended = _crossing(Tracker(max_misses=8, max_hold_windows=0), speed=0.5)
    assert len(ids["a"] | ids["b"]) == 3 and len(ended) == 3


def test_a_held_track_ends_after_max_hold_windows() -> None:
    """A blob that never splits: it continues neither track and starts none; both are held, reported
    unmatched, and end in their ``max_hold_windows + 1``-th window inside it."""
    from anonreid.events.detection import Detection

    tracker = Tracker(max_misses=2, max_hold_windows=10)
    a, b = (100.0, 60.0, 130.0, 140.0), (68.0, 60.0, 98.0, 140.0)
    for k in range(5):
        tracker.update([Detection(a, 0.9, 900), Detection(b, 0.9, 900)], k * WINDOW_US, (k + 1) * WINDOW_US)
    blob = [Detection((68.0, 60.0, 130.0, 140.0), 0.9, 1800)]
    for k in range(5, 5 + 10):
        upd = tracker.update(blob, k * WINDOW_US, (k + 1) * WINDOW_US)
        assert len(upd.active) == 2 and upd.ended == [] and len(tracker.tracks) == 2
        assert all(not t.matched and t.in_blob and t.held == k - 4 for t in upd.active)
    upd = tracker.update(blob, 15 * WINDOW_US, 16 * WINDOW_US)
    assert len(upd.ended) == 2 and upd.active == [] and tracker.tracks == []
    # from the next window the blob is a detection like any other and starts a track of its own
    tracker.update(blob, 16 * WINDOW_US, 17 * WINDOW_US)
    assert [(t.box, t.in_blob) for t in tracker.tracks] == [(blob[0].box, False)]
