"""The one event array type of anonreid.

Events are a numpy structured array with fields ``t`` (int64, microseconds), ``x``, ``y`` (uint16,
pixels) and ``p`` (int8, +1 / -1), sorted by ``t``. Only :func:`make_events` builds one from loose
columns, and every reader and the simulator pass their output through :func:`validate_events`, so a
bad file fails with a message naming the file and the place instead of producing a silently wrong
voxel grid downstream.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

EVENT_DTYPE = np.dtype([("t", "<i8"), ("x", "<u2"), ("y", "<u2"), ("p", "i1")])


@dataclass(frozen=True)
class SensorSize:
    """Sensor resolution in pixels."""

    width: int
    height: int

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0 or self.width > 65535 or self.height > 65535:
            raise ValueError(f"sensor size must be within 1..65535 pixels, got {self.width}x{self.height}")

    @classmethod
    def parse(cls, text: str) -> SensorSize:
        """Parse ``"640x480"``."""
        try:
            w, h = (int(v) for v in text.lower().split("x"))
        except ValueError as exc:
            raise ValueError(f"sensor size must look like WIDTHxHEIGHT (e.g. 640x480), got {text!r}") from exc
        return cls(w, h)

    def __str__(self) -> str:
        return f"{self.width}x{self.height}"


class EventFormatError(ValueError):
    """Bad event data. ``source`` names the file (or stream) and ``where`` the line, byte offset or index."""

    def __init__(self, source: str, message: str, where: str | None = None) -> None:
        self.source = source
        self.where = where
        self.reason = message
        place = f"{source}, {where}" if where else source
        super().__init__(f"{place}: {message}")


def empty_events(n: int = 0) -> np.ndarray:
    """A zero-filled event array of length ``n`` (fill it, then validate it)."""
    return np.zeros(n, dtype=EVENT_DTYPE)


def make_events(
    t: Sequence[float] | np.ndarray,
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    p: Sequence[float] | np.ndarray,
    sensor: SensorSize | None = None,
    source: str = "events",
    index_offset: int = 0,
    check_sorted: bool = True,
) -> np.ndarray:
    """Build a validated event array from columns (``t`` already in microseconds, ``p`` in {-1, +1}).

    Float columns are accepted (text files give floats) but must be finite and integral for ``x``, ``y``
    and ``p``; ``t`` is rounded to the nearest microsecond. ``index_offset`` is added to the index in
    error messages so chunked readers report positions in the whole file.
    """
    cols = {name: np.asarray(col) for name, col in zip("txyp", (t, x, y, p), strict=True)}
    n = len(cols["t"])
    for name, col in cols.items():
        if col.ndim != 1 or len(col) != n:
            raise EventFormatError(source, f"column {name!r} has shape {col.shape}, expected ({n},)")
        if col.dtype.kind == "f":
            bad = ~np.isfinite(col)
            if bad.any():
                i = int(np.argmax(bad))
                raise EventFormatError(source, f"{name} is {col[i]} (not finite)", f"event {i + index_offset}")
            if name != "t" and (col != np.round(col)).any():
                i = int(np.argmax(col != np.round(col)))
                raise EventFormatError(source, f"{name}={col[i]} is not an integer", f"event {i + index_offset}")
        elif col.dtype.kind not in "iub":
            raise EventFormatError(source, f"column {name!r} has non-numeric dtype {col.dtype}")
        if name == "t" and col.dtype.kind in "fu" and n:  # int64 microseconds: refuse, never wrap around
            past = np.abs(col) >= 2.0**63 if col.dtype.kind == "f" else col > np.iinfo(np.int64).max
            if past.any():
                i = int(np.argmax(past))
                raise EventFormatError(source, f"t={col[i]} us is outside the int64 range",
                                       f"event {i + index_offset}")
    ev = empty_events(n)
    t_col = cols["t"]
    ev["t"] = np.rint(t_col).astype(np.int64) if t_col.dtype.kind == "f" else t_col.astype(np.int64)
    for name in "xyp":
        col = cols[name]
        lo, hi = (-1, 1) if name == "p" else (0, 65535)
        wide = col.astype(np.float64) if col.dtype.kind == "f" else col  # float16 cannot hold 65535
        out_of_range = (wide < lo) | (wide > hi)
        if out_of_range.any():
            i = int(np.argmax(out_of_range))
            raise EventFormatError(source, f"{name}={col[i]} outside {lo}..{hi}", f"event {i + index_offset}")
        ev[name] = col.astype(EVENT_DTYPE[name])
    return validate_events(ev, sensor, source, index_offset=index_offset, check_sorted=check_sorted)


def validate_events(
    ev: np.ndarray,
    sensor: SensorSize | None = None,
    source: str = "events",
    index_offset: int = 0,
    check_sorted: bool = True,
    previous_t: int | None = None,
) -> np.ndarray:
    """Check an event array against the contract and return it unchanged.

    Checks the dtype, that timestamps never decrease (also against ``previous_t``, the last timestamp
    of the preceding chunk of the same stream), that coordinates lie on the sensor and that every
    polarity is +1 or -1. Raises :class:`EventFormatError` naming ``source`` and the first bad event.
    """
    if not isinstance(ev, np.ndarray) or ev.dtype != EVENT_DTYPE:
        got = ev.dtype if isinstance(ev, np.ndarray) else type(ev).__name__
        raise EventFormatError(source, f"expected an event array of dtype {EVENT_DTYPE}, got {got}")
    if ev.ndim != 1:
        raise EventFormatError(source, f"expected a 1-d event array, got shape {ev.shape}")
    if len(ev) == 0:
        return ev
    t = ev["t"]
    if check_sorted:
        if previous_t is not None and t[0] < previous_t:
            raise EventFormatError(
                source, f"timestamps go backwards: {t[0]} us after {previous_t} us", f"event {index_offset}"
            )
        back = np.flatnonzero(np.diff(t) < 0)
        if len(back):
            i = int(back[0]) + 1
            raise EventFormatError(
                source, f"timestamps go backwards: {t[i]} us after {t[i - 1]} us", f"event {i + index_offset}"
            )
    bad_p = (ev["p"] != 1) & (ev["p"] != -1)
    if bad_p.any():
        i = int(np.argmax(bad_p))
        raise EventFormatError(source, f"polarity {ev['p'][i]} is not +1 or -1", f"event {i + index_offset}")
    if sensor is not None:
        outside = (ev["x"] >= sensor.width) | (ev["y"] >= sensor.height)
        if outside.any():
            i = int(np.argmax(outside))
            raise EventFormatError(
                source,
                f"pixel ({ev['x'][i]}, {ev['y'][i]}) outside the {sensor} sensor",
                f"event {i + index_offset}",
            )
    return ev


def polarity_from_01(p: np.ndarray, source: str = "events", index_offset: int = 0) -> np.ndarray:
    """Map the 0/1 (off/on) polarity used by most files to the contract's -1/+1."""
    p = np.asarray(p)
    bad = (p != 0) & (p != 1)
    if bad.any():
        i = int(np.argmax(bad))
        raise EventFormatError(source, f"polarity {p[i]} is not 0 or 1", f"event {i + index_offset}")
    return np.where(p > 0, 1, -1).astype(np.int8)


def concat_events(chunks: Iterable[np.ndarray]) -> np.ndarray:
    """Concatenate event arrays of one stream (in time order)."""
    parts = [c for c in chunks if len(c)]
    return np.concatenate(parts) if parts else empty_events()
