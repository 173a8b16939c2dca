"""The test set of ``anonreid evaluate``: the clips of the world's *test* identities (or of Event-ReId's
official test split), built exactly as training builds its clips (:func:`anonreid.models.data.build_clips`,
the run's data config: sensor-scale tiles around the person, ``clip_len`` consecutive 33.3 ms windows), at
most ``clips_per_pass`` evenly spaced clips per pass, with what the attacker may hold about the test
identities (enrollment photos, head ratios) and the event-activity detector's boxes
(:func:`detected_boxes`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from anonreid.models.data import DEFAULT_HEAD_RATIO


@dataclass
class TestSet:
    """The evaluation clips and what the attacker may hold about the test identities."""

    name: str
    clips: Any  # anonreid.models.data.ClipSet
    ids: np.ndarray  # identity string per clip
    cams: np.ndarray  # camera string per clip
    has_reference: bool  # reference frames exist (the world; not Event-ReId's events.txt layout)
    enrollment: dict[str, np.ndarray]  # identity -> photo (empty when none)
    head_ratio: dict[str, float]
    dataset: Any
    data_cfg: Any
    fingerprint: str
    cache: Path
    clips_per_pass: int
    query: np.ndarray | None = None  # per clip: an official query (Event-ReId lists); None: one per id+camera
    gallery: np.ndarray | None = None  # per clip: in the official gallery; None: every clip
    days: np.ndarray | None = None  # per clip: the day it was filmed on, in that day's outfit; None: one day


def _camera_names(dataset: Any, clips: Any) -> np.ndarray:
    return np.asarray([dataset.passes[int(i)].camera for i in clips.passes])


def open_test_set(
    dataset: str, data_dir: Path | None, root: Path | None, data_cfg: Any, cache: Path, clips_per_pass: int,
    progress: bool, time_unit: str | None = None, sensor: str = "", enrollment_day: int = 0,
) -> TestSet:
    """The test clips of the world (``dataset="world"``, ``data_dir``) or of Event-ReId (``root``, either
    layout of :mod:`anonreid.events.event_reid_dataset`: single-window clips, as the authors evaluate;
    the official query and gallery lists when the root has them). The world's enrollment photos are
    those of ``enrollment_day`` (0: the day the cameras film)."""
    from anonreid.models.data import build_clips, dataset_fingerprint

    query = gallery = None

    if dataset == "world":
        from anonreid.events.world import WorldDataset

        if data_dir is None:
            raise ValueError("--data is required for --dataset world")
        ds: Any = WorldDataset(data_dir)
        fingerprint = dataset_fingerprint(data_dir)
        ids = ds.identities("test")
        enrollment = {i: ds.enrollment(i, enrollment_day) for i in ids}
        head = {p["identity"]: float(p.get("head_ratio", DEFAULT_HEAD_RATIO)) for p in ds.meta["identities"]}
        has_reference = True
    elif dataset == "event-reid":
        if root is None:
            raise ValueError("--root is required for --dataset event-reid")
        from anonreid.events.event_reid_dataset import OFFICIAL_EVERY, open_event_reid_dataset
        from anonreid.events.types import SensorSize

        ds = open_event_reid_dataset(root, "test", time_unit, SensorSize.parse(sensor) if sensor else None,
                                     data_cfg.window_us)
        fingerprint = ds.fingerprint
        ids, enrollment, head, has_reference = ds.identities(), {}, {}, False
        data_cfg = data_cfg.model_copy(update={"clip_len": 1, "clip_stride": 1 if ds.layout == "lists" else OFFICIAL_EVERY})
    else:
        raise ValueError(f"--dataset must be 'world' or 'event-reid', got {dataset!r}")
    clips = build_clips(ds, ids, data_cfg, cache, fingerprint, max_clips_per_pass=clips_per_pass, progress=progress)
    clip_ids = np.asarray([clips.identities[int(i)] for i in clips.labels])
    if dataset == "event-reid" and ds.layout == "lists":
        roles = np.asarray([ds.passes[int(i)].split for i in clips.passes])
        query, gallery = roles == "query", roles == "gallery"
    days = None
    if dataset == "world" and ds.outfit_days > 1:
        days = ds.clip_days(clips.passes)
    return TestSet(dataset, clips, clip_ids, _camera_names(ds, clips), has_reference, enrollment, head, ds, data_cfg,
                   fingerprint, cache, clips_per_pass, query, gallery, days)


def detected_boxes(test: TestSet, min_iou: float = 0.3) -> np.ndarray:
    """The event-activity detector's box (tile coordinates) for the last window of every clip: the
    detection overlapping the ground-truth box most (IoU >= ``min_iou``), NaN where it found none.

    The detector runs over every window of the pass from its start, as the camera node runs it.
    """
    from anonreid.events.detection import ActivityDetector, box_iou
    from anonreid.models.data import _select_clips, _tile_origin

    cfg = test.data_cfg.model_copy(update={"max_clips_per_pass": test.clips_per_pass})
    out = np.full((len(test.clips), 4), np.nan, np.float32)
    th, tw = cfg.tile_hw if cfg.tile_hw is not None else (test.dataset.sensor.height, test.dataset.sensor.width)
    for pass_idx in np.unique(test.clips.passes):
        members = np.flatnonzero(test.clips.passes == pass_idx)
        data = test.dataset.load_pass(test.dataset.passes[int(pass_idx)].pass_id)
        starts = _select_clips(np.asarray(data.boxes, np.float32), cfg)
        if len(starts) != len(members):
            raise RuntimeError(f"pass {pass_idx}: {len(starts)} clip starts recomputed, {len(members)} clips built")
        wanted = {k + cfg.clip_len - 1: int(m) for k, m in zip(starts, members, strict=True)}
        bounds = np.r_[data.frame_ts, data.frame_ts[-1] + cfg.window_us]
        edges = np.asarray(np.searchsorted(data.events["t"], bounds), np.int64)
        detector = ActivityDetector(data.sensor)
        for k in range(max(wanted) + 1):
            dets = detector.update(data.events[edges[k] : edges[k + 1]])
            if k not in wanted or not dets:
                continue
            gt = data.boxes[k]
            iou = box_iou(np.array([d.box for d in dets]), gt[None])[:, 0]
            if iou.max() < min_iou:
                continue
            y0 = _tile_origin((gt[1] + gt[3]) / 2, th, data.sensor.height)
            x0 = _tile_origin((gt[0] + gt[2]) / 2, tw, data.sensor.width)
            out[wanted[k]] = np.asarray(dets[int(iou.argmax())].box, np.float32) - np.array([x0, y0, x0, y0], np.float32)
    return out


def reference_frames(test: TestSet) -> np.ndarray:
    """The clips' reference frames ``(N, T, H, W)`` in [0, 1]."""
    return np.asarray(test.clips.frames, np.float32) / 255.0
