"""The console tile writer: the camera's side of the console tiles (:mod:`anonreid.proto.console_tiles`;
the console keeps only the reader, :mod:`anonreid.gallery.console.tiles`). It renders the anonymized
activity as a PNG and publishes it to Redis with the current tracks.

The picture is the last full anonymized frame (an audit window) or, in between, E_an's output for an
empty frame with the regions anonymized for the embeddings since the last tile pasted in, drawn as the
departure from E_an's empty-frame output (so a scene without activity is black); raw events or voxels
never go into it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING

import numpy as np
import redis

from anonreid.proto.console_tiles import (
    CAMERAS_KEY,
    LATENCY_SAMPLES,
    LATENCY_WINDOW_S,
    TILE_TTL_S,
    TrackView,
    tile_key,
    tracks_key,
)

if TYPE_CHECKING:
    import torch

__all__ = ["MIN_ACTIVITY", "TileWriter", "TrackView", "activity_png", "publish_tile"]

log = logging.getLogger(__name__)

#: departures from the baseline below this (summed over bins) are drawn black: float noise, not activity
MIN_ACTIVITY = 1e-3


def activity_png(anonymized_voxel: np.ndarray, baseline: np.ndarray, max_side: int = 240) -> bytes:
    """Render an anonymized voxel (B, H, W) as a grey PNG: the per-pixel departure from ``baseline``
    (the anonymizer's output for an empty frame: what "no activity" looks like after anonymization),
    summed over bins and scaled so its 99.5th percentile is white; where nothing departs, black."""
    import io

    from PIL import Image

    v = np.asarray(anonymized_voxel, dtype=np.float32)
    if v.ndim != 3:
        raise ValueError(f"expected a (bins, height, width) voxel, got shape {v.shape}")
    if np.shape(baseline) != v.shape:
        raise ValueError(f"baseline shape {np.shape(baseline)} differs from the voxel's {v.shape}")
    img = np.abs(v - np.asarray(baseline, np.float32)).sum(axis=0)
    img[img < MIN_ACTIVITY] = 0.0
    hi = max(float(np.percentile(img, 99.5)), MIN_ACTIVITY)
    arr = (np.clip(img / hi, 0, 1) * 255).astype(np.uint8)
    pil = Image.fromarray(arr)
    if max(pil.size) > max_side:
        scale = max_side / max(pil.size)
        pil = pil.resize((max(1, int(pil.width * scale)), max(1, int(pil.height * scale))))
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return buf.getvalue()


def publish_tile(
    client: redis.Redis, camera: str, png: bytes, tracks: list[TrackView], sensor_wh: tuple[int, int],
    latencies_s: list[float] | None = None,
) -> None:
    """Write the tile, its tracks and the camera's recent event-to-identity latencies (the newest
    :data:`LATENCY_SAMPLES` of the last :data:`LATENCY_WINDOW_S` seconds, rounded to 0.1 ms)."""
    recent = [round(x, 4) for x in (latencies_s or [])[-LATENCY_SAMPLES:]]
    meta = {"camera": camera, "updated_at": time.time(), "sensor": list(sensor_wh),
            "tracks": [asdict(t) for t in tracks], "latency": {"window_s": LATENCY_WINDOW_S, "samples_s": recent}}
    pipe = client.pipeline()
    pipe.set(tile_key(camera), png, ex=TILE_TTL_S)
    pipe.set(tracks_key(camera), json.dumps(meta), ex=TILE_TTL_S)
    pipe.sadd(CAMERAS_KEY, camera)
    pipe.execute()


class TileWriter:
    """One camera's console tile, published every ``every_s`` of stream time.

    ``blank()`` is E_an on an empty frame (computed once, at the first tile); the pipeline hands over the
    regions it anonymized (:meth:`add_regions`) and the audit tap every full anonymized frame
    (:meth:`set_full_frame`, from its own thread).
    """

    def __init__(self, camera_id: str, client: redis.Redis, sensor_wh: tuple[int, int], every_s: float,
                 blank: Callable[[], np.ndarray]) -> None:
        self.camera_id = camera_id
        self.client = client
        self.sensor_wh = sensor_wh
        self.every_us = int(every_s * 1e6)
        self._blank_fn = blank
        self._blank: np.ndarray | None = None
        self._full: np.ndarray | None = None
        self._regions: list[tuple[int, int, torch.Tensor]] = []
        self._next_us = 0

    def set_full_frame(self, anonymized: np.ndarray) -> None:
        self._full = anonymized

    def add_regions(self, regions: list[tuple[int, int, torch.Tensor]]) -> None:
        """Anonymized regions ``(x1, y1, (B, h, w))`` to paste into the next tile."""
        self._regions += regions

    def due(self, end_us: int) -> bool:
        """Whether a tile is due once the stream has reached ``end_us`` (then the next one is scheduled)."""
        if end_us < self._next_us:
            return False
        self._next_us = end_us + self.every_us
        return True

    def publish(self, tracks: Callable[[], list[TrackView]], latencies: Callable[[], list[float]] | None) -> None:
        """Compose and write the tile with ``tracks()`` and the recent ``latencies()``; a failure is logged
        (the console must never stop the camera)."""
        try:
            if self._blank is None:
                self._blank = self._blank_fn()
            if self._full is not None:
                canvas = self._full
            else:
                canvas = self._blank.copy()
                for x1, y1, region in self._regions:
                    r = region.float().cpu().numpy()
                    canvas[:, y1 : y1 + r.shape[1], x1 : x1 + r.shape[2]] = r
            publish_tile(self.client, self.camera_id, activity_png(canvas, self._blank), tracks(), self.sensor_wh,
                         latencies() if latencies is not None else None)
        except Exception as exc:
            log.warning("camera %s: console tile not published: %s", self.camera_id, exc)
        finally:
            self._full = None
            self._regions = []
