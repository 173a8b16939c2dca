"""The reader protocol shared by every format: an iterable of validated event chunks.

A reader knows its ``path``, its ``sensor`` (when the file says, or the caller does) and yields sorted,
validated chunks of at most about ``chunk_events`` events, so a multi-GB recording never has to fit in
memory. Every chunk goes through :func:`validate_events` against the sensor and the previous chunk's
last timestamp; errors name the file and a place a person can find (line for text, byte offset for
binary formats) through :meth:`EventReader.locate`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from anonreid.events.io.time_units import TIME_UNITS, time_scale_to_us
from anonreid.events.types import EventFormatError, SensorSize, concat_events, make_events, validate_events

__all__ = ["TIME_UNITS", "EventReader", "time_scale_to_us"]  # the time units: anonreid.events.io.time_units


_EVENT_WHERE = re.compile(r"^event (\d+)$")
NUMERIC_KINDS = "iufb"  # numpy dtype kinds a column of event values may have


class EventReader:
    """Base class: subclasses implement :meth:`_chunks` (raw chunks) and may override :meth:`locate`."""

    format_name = "events"

    def __init__(self, path: str | Path, sensor: SensorSize | None = None, chunk_events: int = 1_000_000) -> None:
        if chunk_events <= 0:
            raise ValueError(f"chunk_events must be positive, got {chunk_events}")
        self.path = Path(path)
        self.sensor = sensor
        self.chunk_events = int(chunk_events)

    @property
    def source(self) -> str:
        return str(self.path)

    def error(self, message: str, where: str | None = None) -> EventFormatError:
        return EventFormatError(self.source, message, where)

    def locate(self, event_index: int) -> str:
        """Human place of event ``event_index`` (0-based over the whole file); subclasses refine it."""
        return f"event {event_index}"

    def relocate(self, exc: EventFormatError) -> EventFormatError:
        """The same error with its ``event N`` place turned into this format's place (line, byte)."""
        match = _EVENT_WHERE.match(exc.where or "")
        return self.error(exc.reason, self.locate(int(match.group(1))) if match else exc.where)

    def columns_to_events(
        self, t: np.ndarray, x: np.ndarray, y: np.ndarray, p: np.ndarray, index_offset: int, time_scale: float = 1.0
    ) -> np.ndarray:
        """Events from file columns: ``p`` as 0/1, bool or -1/+1; ``t`` times ``time_scale`` (to us)."""
        for name, col in zip("txyp", (t, x, y, p), strict=True):  # before any arithmetic on them
            if col.dtype.kind not in NUMERIC_KINDS or col.ndim != 1:
                raise self.error(f"column {name!r} has dtype {col.dtype} and shape {col.shape}, expected a 1-d "
                                 "column of integers, floats or booleans")
        if len(p) and p.min() >= 0 and p.max() <= 1:  # 0/1 (or bool) polarity
            p = np.where(p.astype(np.int64) > 0, 1, -1)
        if t.dtype.kind == "f" or time_scale != 1.0:
            t = t.astype(np.float64) * time_scale
        try:
            return make_events(t, x, y, p, source=self.source, index_offset=index_offset)
        except EventFormatError as exc:
            raise self.relocate(exc) from None

    def _chunks(self) -> Iterator[np.ndarray]:
        raise NotImplementedError

    def __iter__(self) -> Iterator[np.ndarray]:
        return self._validated(self._chunks())

    def _validated(self, chunks: Iterable[np.ndarray], first_index: int = 0) -> Iterator[np.ndarray]:
        """``chunks`` (the file's events from event ``first_index`` on), each checked against the sensor
        and the one before it; errors name the place in the file."""
        seen = first_index
        last_t: int | None = None
        for chunk in chunks:
            try:
                validate_events(chunk, self.sensor, self.source, index_offset=seen, previous_t=last_t)
            except EventFormatError as exc:
                raise self.relocate(exc) from None
            if len(chunk):
                seen += len(chunk)
                last_t = int(chunk["t"][-1])
                yield chunk

    def read_all(self) -> np.ndarray:
        """All events of the file in one array (only for files that fit in memory)."""
        return concat_events(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.source!r}, sensor={self.sensor})"
