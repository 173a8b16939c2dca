"""Image grids for the auditor: reference | what each attacker reconstructs, as PNG, kept in Redis.

The latest ``kept`` grids of a camera live in the list ``audit:grids:<camera>`` (newest first); the
report shows the newest one per camera.
"""

from __future__ import annotations

import io

import numpy as np
import redis


def grids_key(camera: str) -> str:
    return f"audit:grids:{camera}"


def grid_png(reference: np.ndarray | None, views: list[tuple[str, np.ndarray]]) -> bytes:
    """A labelled row of grey images: reference (when known) | each attacker view, as PNG."""
    from PIL import Image, ImageDraw

    panels = ([("reference", reference.astype(np.float32) / 255.0)] if reference is not None else []) + views
    h, w = panels[0][1].shape
    canvas = Image.new("L", (w * len(panels) + 4 * (len(panels) - 1), h + 14), 255)
    draw = ImageDraw.Draw(canvas)
    for i, (name, img) in enumerate(panels):
        x = i * (w + 4)
        canvas.paste(Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)), (x, 14))
        draw.text((x + 2, 1), name, fill=0)
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    return buf.getvalue()


def keep_grid(client: redis.Redis, camera: str, png: bytes, kept: int) -> None:
    """Push ``png`` as the camera's newest grid, keeping the latest ``kept``."""
    key = grids_key(camera)
    pipe = client.pipeline()
    pipe.lpush(key, png)
    pipe.ltrim(key, 0, kept - 1)
    pipe.execute()


def latest_grid(client: redis.Redis, camera: str) -> bytes | None:
    latest = client.lindex(grids_key(camera), 0)
    return bytes(latest) if latest else None  # type: ignore[arg-type]
