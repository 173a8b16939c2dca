"""The console's side of the live camera tiles (:mod:`anonreid.proto.console_tiles`): read what the
camera nodes keep in Redis."""

from __future__ import annotations

import json

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
