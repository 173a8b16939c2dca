"""The camera node's side of the console tiles (:mod:`anonreid.proto.console_tiles`): render the
anonymized activity as a PNG and publish it to Redis with the current tracks."""

from __future__ import annotations

import json
import time
from dataclasses import asdict

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

__all__ = ["MIN_ACTIVITY", "TrackView", "activity_png", "publish_tile"]

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
