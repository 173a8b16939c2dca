"""What a published sighting must satisfy before the gallery touches anything.

Every field a camera sends is bounded, and a violation raises :class:`InvalidInput` naming the field
(``span.end_us``, ``box.x2``, ``model_version``...) with a short reason, so that nothing of it is
stored:

- ids: non-empty, printable, at most :data:`MAX_TEXT_LENGTH` characters (they become Redis keys);
  ``model_version`` printable and as long at most (it may be empty);
- the camera: one of ``gallery.camera_ids``;
- times: ``0 <= span.start_us <= span.end_us``, and ``span.end_us``, ``published_at_us``, ``event_at_us``
  and ``clock.epoch_us`` no further past the gallery's clock than ``gallery.max_clock_skew_s`` and not
  negative (``published_at_us`` / ``event_at_us`` 0 = not given);
- the box summary: finite numbers, corners inside the sensor (``0 <= x1 <= x2 <= max_sensor_width``,
  likewise y), mean area within the sensor's, finite velocities;
- quality in [0, 1]; the embedding ``embedding_dim`` finite values with a non-zero norm.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import numpy as np

from anonreid.gallery.errors import InvalidInput
from anonreid.gallery.types import Sighting
from anonreid.orchestration.config import GalleryConfig

MAX_TEXT_LENGTH = 256
MIN_NORM = 1e-6


def check_embedding(values: np.ndarray | Sequence[float], dim: int, sighting_id: str = "") -> np.ndarray:
    """A finite, non-zero ``dim``-vector, returned L2-normalised as float32; else :class:`InvalidInput`."""
    emb = np.asarray(values, dtype=np.float32).reshape(-1)
    where = f"sighting {sighting_id!r}: " if sighting_id else ""
    if emb.size != dim:
        raise InvalidInput(f"{where}embedding has {emb.size} values, expected {dim}",
                           reason="embedding_size", sighting_id=sighting_id, field="embedding")
    wide = emb.astype(np.float64)
    squared = float(wide.dot(wide))  # finite exactly when every value is (float32 squares cannot overflow it)
    if not math.isfinite(squared):
        bad = int((~np.isfinite(emb)).sum())
        raise InvalidInput(f"{where}embedding has {bad} NaN or infinite values",
                           reason="embedding_not_finite", sighting_id=sighting_id, field="embedding")
    norm = math.sqrt(squared)  # np.linalg.norm's formula, without its overhead (a check per published sighting)
    if not norm > MIN_NORM:
        raise InvalidInput(f"{where}embedding has norm {norm:.3g}: cannot be L2-normalised",
                           reason="embedding_zero", sighting_id=sighting_id, field="embedding")
    return emb / np.float32(norm)  # a new float32 array


def _check_text(value: str, field: str, sighting_id: str, *, required: bool = True) -> None:
    """Ids (and the model version) are printable strings of bounded length; ids are not empty."""
    where = f"sighting {sighting_id!r}: " if field != "sighting_id" else ""
    if not value:
        if required:
            raise InvalidInput(f"{where}{field} is empty", reason="empty_id", sighting_id=sighting_id, field=field)
        return
    if len(value) > MAX_TEXT_LENGTH or not value.isprintable():
        raise InvalidInput(f"{where}{field} must be at most {MAX_TEXT_LENGTH} printable characters",
                           reason="bad_id" if required else "bad_text", sighting_id=sighting_id, field=field)


def _check_times(s: Sighting, skew_s: float, now_us: int) -> None:
    sid = s.sighting_id
    if s.start_us < 0:
        raise InvalidInput(f"sighting {sid!r}: span.start_us {s.start_us} is negative",
                           reason="negative_time", sighting_id=sid, field="span.start_us")
    if s.end_us < s.start_us:
        raise InvalidInput(f"sighting {sid!r}: span ends ({s.end_us}) before it starts ({s.start_us})",
                           reason="end_before_start", sighting_id=sid, field="span")
    latest = now_us + round(skew_s * 1_000_000)
    epoch = s.clock.epoch_us
    wall = (("published_at_us", s.published_at_us), ("event_at_us", s.event_at_us),
            *((("clock.epoch_us", epoch),) if epoch is not None else ()))
    for field, value in (("span.end_us", s.end_us), *wall):
        if value > latest:
            raise InvalidInput(f"sighting {sid!r}: {field} {value} is {(value - now_us) / 1e6:.3g} s past the "
                               f"gallery's clock (gallery.max_clock_skew_s = {skew_s:g})",
                               reason="future_time", sighting_id=sid, field=field)
    for field, value in wall:
        if value < 0:
            raise InvalidInput(f"sighting {sid!r}: {field} {value} is negative",
                               reason="negative_time", sighting_id=sid, field=field)


def _check_box(s: Sighting, width: int, height: int) -> None:
    sid, b = s.sighting_id, s.box
    for name, value in zip(("x1", "y1", "x2", "y2", "num_boxes", "mean_area", "velocity_x", "velocity_y"),
                           b.as_tuple(), strict=True):
        if not math.isfinite(value):
            raise InvalidInput(f"sighting {sid!r}: box.{name} is {value}", reason="box_not_finite",
                               sighting_id=sid, field=f"box.{name}")
    for lo, hi, size, key in ((b.x1, b.x2, width, "x"), (b.y1, b.y2, height, "y")):
        if not 0 <= lo <= hi <= size:
            bad = f"box.{key}1" if not 0 <= lo <= hi else f"box.{key}2"
            raise InvalidInput(f"sighting {sid!r}: box {key}1..{key}2 = {lo:g}..{hi:g} is not inside the sensor "
                               f"(0..{size}, gallery.max_sensor_{'width' if key == 'x' else 'height'})",
                               reason="box_outside", sighting_id=sid, field=bad)
    if not 0 <= b.mean_area <= width * height:
        raise InvalidInput(f"sighting {sid!r}: box.mean_area {b.mean_area:g} is not within the sensor's "
                           f"{width * height} px^2", reason="box_outside", sighting_id=sid, field="box.mean_area")


def validate_sighting(s: Sighting, config: GalleryConfig, now_us: int | None = None) -> np.ndarray:
    """Check every field of a published sighting against ``config`` and the gallery clock (``now_us``,
    default now); returns its L2-normalised embedding."""
    _check_text(s.sighting_id, "sighting_id", s.sighting_id)  # the raw id still tells the client which one
    sid = s.sighting_id
    _check_text(s.camera_id, "camera_id", sid)
    _check_text(s.tracklet_id, "tracklet_id", sid)
    _check_text(s.model_version, "model_version", sid, required=False)
    if s.camera_id not in config.camera_ids:
        raise InvalidInput(f"sighting {sid!r}: unknown camera {s.camera_id!r} (known: {', '.join(config.camera_ids)})",
                           reason="unknown_camera", sighting_id=sid, field="camera_id")
    _check_times(s, config.max_clock_skew_s, time.time_ns() // 1000 if now_us is None else now_us)
    _check_box(s, config.max_sensor_width, config.max_sensor_height)
    if not (math.isfinite(s.quality) and 0.0 <= s.quality <= 1.0):
        raise InvalidInput(f"sighting {sid!r}: quality {s.quality} is not in [0, 1]",
                           reason="quality", sighting_id=sid, field="quality")
    return check_embedding(s.embedding, config.embedding_dim, sid)
