"""The console's side of the live camera tiles (:mod:`anonreid.proto.console_tiles`): read what the
camera nodes keep in Redis."""

from __future__ import annotations

import json
from typing import Any

import redis

from anonreid.proto.console_tiles import CAMERAS_KEY, tile_key, tracks_key


def read_tile(client: redis.Redis, camera: str) -> bytes | None:
    data = client.get(tile_key(camera))
    if data is None:
        return None
    return data if isinstance(data, bytes) else str(data).encode()


def read_cameras(client: redis.Redis) -> list[dict]:
    out = []
    for cam in sorted(c.decode() if isinstance(c, bytes) else str(c) for c in client.smembers(CAMERAS_KEY)):
        meta = client.get(tracks_key(cam))
        out.append(json.loads(meta) if meta else {"camera": cam, "updated_at": None, "tracks": []})
    return out


def live_latency(cameras: list[dict[str, Any]]) -> dict[str, Any]:
    """The live event-to-identity latency over every camera's recent acknowledged sightings (their tile
    metadata's ``latency`` samples, which this removes from ``cameras``): pooled p50 / p95 and count,
    and each camera's p95 and count. ``None`` where there are no samples."""
    import numpy as np

    pooled: list[float] = []
    per_camera: dict[str, dict[str, Any]] = {}
    window_s = None
    for cam in cameras:
        latency = cam.pop("latency", None) or {}
        samples = [float(x) for x in latency.get("samples_s", [])]
        window_s = latency.get("window_s", window_s)
        pooled += samples
        per_camera[cam["camera"]] = {"count": len(samples),
                                     "p95": float(np.percentile(samples, 95)) if samples else None}
    return {
        "window_s": window_s, "count": len(pooled),
        "p50": float(np.percentile(pooled, 50)) if pooled else None,
        "p95": float(np.percentile(pooled, 95)) if pooled else None,
        "cameras": per_camera,
    }
