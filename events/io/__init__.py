"""Event file formats: one reader per format behind :func:`open_events`, and the writers.

``open_events(path)`` picks the reader from the file's content (magic bytes) and suffix:

| format | suffix | reader |
| --- | --- | --- |
| Event-ReId ``events.txt`` / chunk files, plain text | ``.txt`` ``.csv`` | :class:`TextReader` |
| HDF5 ``events/{xs,ys,ts,ps}`` (+ frames: ``images/*``, or ``frames``) | ``.h5`` ``.hdf5`` | :class:`Hdf5Reader` |
| Prophesee EVT 2.0 / 3.0 | ``.raw`` | :class:`RawReader` |
| Prophesee DAT | ``.dat`` | :class:`DatReader` |
| AEDAT4 | ``.aedat4`` | :class:`Aedat4Reader` |
| numpy | ``.npz`` | :class:`NpzReader` |

Every reader is an iterable of validated event chunks (``chunk_events`` at a time) with ``.path`` and
``.sensor``; :func:`read_events` concatenates them for files that fit in memory.

Time units (:mod:`anonreid.events.io.time_units`): the binary formats record microseconds (a unit given
for them is not used, with a warning); HDF5 and ``.npz`` integer timestamps are read as us unless
``time_unit`` says otherwise; their float timestamps record no unit: without ``time_unit`` it is inferred
from them, with a :class:`TimeUnitWarning` (:class:`Hdf5Reader`, :class:`NpzReader`, through
:func:`~anonreid.events.io.time_units.float_column_time_unit`); a text file records no unit, so without
``time_unit`` it is decided by :func:`text_time_unit` (an Event-ReId chunk's from its span, an
``events.txt``'s from its labels, else us), always with a :class:`TimeUnitWarning`.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from anonreid.events.io.aedat4 import MAGIC as AEDAT4_MAGIC
from anonreid.events.io.aedat4 import Aedat4Reader
from anonreid.events.io.base import TIME_UNITS, EventReader, time_scale_to_us
from anonreid.events.io.event_reid import (
    ChunkGapWarning,
    ChunkSequence,
    LabelBox,
    chunk_span,
    infer_time_unit,
    open_event_reid,
    open_event_reid_chunk,
    open_event_reid_list,
    parse_chunk_name,
    read_labels,
    read_list_file,
    text_time_unit,
    write_event_reid,
    write_event_reid_chunks,
)
from anonreid.events.io.hdf5 import Hdf5Reader, write_hdf5
from anonreid.events.io.npz import NpzReader, write_npz
from anonreid.events.io.prophesee import DatReader, RawReader
from anonreid.events.io.text import TextReader
from anonreid.events.io.time_units import TimeUnitWarning, unit_name
from anonreid.events.types import EventFormatError, SensorSize

__all__ = [
    "TIME_UNITS",
    "Aedat4Reader",
    "ChunkGapWarning",
    "ChunkSequence",
    "DatReader",
    "EventReader",
    "Hdf5Reader",
    "LabelBox",
    "NpzReader",
    "RawReader",
    "TextReader",
    "TimeUnitWarning",
    "chunk_span",
    "detect_format",
    "infer_time_unit",
    "open_event_reid",
    "open_event_reid_chunk",
    "open_event_reid_list",
    "open_events",
    "parse_chunk_name",
    "read_events",
    "read_labels",
    "read_list_file",
    "text_time_unit",
    "time_scale_to_us",
    "unit_name",
    "write_event_reid",
    "write_event_reid_chunks",
    "write_hdf5",
    "write_npz",
]

READERS: dict[str, type[EventReader]] = {
    "text": TextReader,
    "hdf5": Hdf5Reader,
    "raw": RawReader,
    "dat": DatReader,
    "aedat4": Aedat4Reader,
    "npz": NpzReader,
}
_MICROSECOND_FORMATS = ("raw", "dat", "aedat4")  # formats whose timestamps are us by definition
_SUFFIXES = {".txt": "text", ".csv": "text", ".h5": "hdf5", ".hdf5": "hdf5", ".raw": "raw", ".dat": "dat",
             ".aedat4": "aedat4", ".npz": "npz"}


def detect_format(path: str | Path) -> str:
    """Format name of ``path``: by magic bytes first (HDF5, AEDAT4, zip), then by suffix."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as exc:
        raise EventFormatError(str(path), f"cannot open: {exc.strerror or exc}") from None
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "hdf5"
    if head.startswith(AEDAT4_MAGIC):
        return "aedat4"
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "npz"
    suffix = path.suffix.lower()
    if suffix in _SUFFIXES:
        return _SUFFIXES[suffix]
    raise EventFormatError(str(path), f"unknown event file format (suffix {suffix!r}); pass format=")


def open_events(
    path: str | Path, sensor: SensorSize | None = None, chunk_events: int = 1_000_000, format: str | None = None,
    **kw: Any,
) -> EventReader:
    """Open an event file for chunked reading; ``format`` overrides detection, ``kw`` go to the reader
    (e.g. ``time_unit`` for text/HDF5/npz, ``encoding`` for ``.raw``, ``polarity``/``header`` for text).
    ``time_unit=None`` is the format's own (see the module docstring)."""
    name = format or detect_format(path)
    if name not in READERS:
        raise ValueError(f"unknown format {name!r}; known: {sorted(READERS)}")
    if name == "text":
        kw["time_unit"] = text_time_unit(path, kw.get("time_unit"))
    elif kw.get("time_unit", "") is None:
        del kw["time_unit"]
    elif "time_unit" in kw and name in _MICROSECOND_FORMATS and unit_name(kw.pop("time_unit")) != "us":
        warnings.warn(f"{path}: a {name} file records its timestamps in us; the time unit given (--time-unit) is "
                      "for files that do not record theirs, and is not used for it", TimeUnitWarning, stacklevel=2)
    return READERS[name](path, sensor, chunk_events, **kw)  # type: ignore[call-arg]


def read_events(path: str | Path, **kw: Any) -> np.ndarray:
    """All events of a file in one validated array (see :func:`open_events` for the options)."""
    return open_events(path, **kw).read_all()
