"""``.npz`` events: columns ``t, x, y, p`` (or a structured ``events`` array with those fields).

The ``.npy`` members are streamed out of the zip archive (their headers parsed with
``numpy.lib.format``), so even a compressed multi-GB archive is read chunk by chunk. The sensor comes
from a ``sensor`` member ``[width, height]`` when present. Integer ``t`` is us unless ``time_unit`` says
otherwise; float ``t`` records no unit and is treated as HDF5's float ``ts`` is, by the same helper
(:func:`~anonreid.events.io.time_units.float_column_time_unit`): without ``time_unit`` the unit is
inferred from the timestamps with a ``TimeUnitWarning``, and one under which the events would come
faster than any sensor reads out, or float timestamps that are whole microseconds in no unit, are an
error naming ``--time-unit``.
"""

from __future__ import annotations

import lzma
import struct
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import IO

import numpy as np

from anonreid.events.io.base import EventReader, time_scale_to_us
from anonreid.events.io.time_units import FLOAT_UNIT_SAMPLE, float_column_time_unit
from anonreid.events.types import EventFormatError, SensorSize

__all__ = ["NpzReader", "write_npz"]

# what a corrupt archive can raise from zipfile and its decompressors
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, NotImplementedError, RuntimeError,
               zlib.error, lzma.LZMAError, ValueError, struct.error, UnicodeDecodeError, KeyError, SyntaxError)
_ALIASES = {"t": ("t", "ts"), "x": ("x", "xs"), "y": ("y", "ys"), "p": ("p", "ps")}


class _NpyStream:
    """Chunked reading of one ``.npy`` member of an open zip archive."""

    def __init__(self, fp: IO[bytes], name: str, source: str) -> None:
        try:
            version = np.lib.format.read_magic(fp)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, _fortran, dtype = read_header(fp)
        except Exception as exc:  # numpy parses the header with ast/tokenize: any failure means a bad header
            raise EventFormatError(source, f"member {name!r} is not a valid .npy array: {exc}") from None
        if dtype.hasobject:
            raise EventFormatError(source, f"member {name!r} holds Python objects, refusing to load it")
        if len(shape) != 1:
            raise EventFormatError(source, f"member {name!r} must be 1-d, got shape {shape}")
        self.fp, self.name, self.source, self.dtype, self.length = fp, name, source, dtype, int(shape[0])
        self.done = 0

    def skip_to(self, index: int) -> None:
        """Continue reading at element ``index`` (forward; zipfile decompresses up to it in bounded steps)."""
        try:
            self.fp.seek((index - self.done) * self.dtype.itemsize, 1)
        except _ZIP_ERRORS as exc:
            raise EventFormatError(self.source, f"member {self.name!r} is corrupt: {exc}",
                                   f"element {self.done}") from None
        self.done = index

    def read(self, n: int) -> np.ndarray:
        n = min(n, self.length - self.done)
        want = n * self.dtype.itemsize
        try:
            data = self.fp.read(want)
        except _ZIP_ERRORS as exc:
            raise EventFormatError(self.source, f"member {self.name!r} is corrupt: {exc}",
                                   f"element {self.done}") from None
        if len(data) != want:
            raise EventFormatError(self.source, f"member {self.name!r} is truncated", f"element {self.done}")
        self.done += n
        return np.frombuffer(data, dtype=self.dtype)


class NpzReader(EventReader):
    """Streaming reader of an ``.npz`` archive of event columns."""

    format_name = "npz"

    def __init__(
        self, path: str | Path, sensor: SensorSize | None = None, chunk_events: int = 1_000_000,
        time_unit: str | float | None = None,
    ) -> None:
        super().__init__(path, sensor, chunk_events)
        with self._zip() as z:
            names = {n.removesuffix(".npy") for n in z.namelist()}
            if "events" in names:
                self.members = {"events": "events.npy"}
            else:
                self.members = {}
                for col, aliases in _ALIASES.items():
                    found = [a for a in aliases if a in names]
                    if not found:
                        raise self.error(f"no '{col}' array (members: {sorted(names)})")
                    self.members[col] = found[0] + ".npy"
            if self.sensor is None and "sensor" in names:
                try:
                    with z.open("sensor.npy") as fp:
                        values = _NpyStream(fp, "sensor", self.source).read(2)
                except EventFormatError:
                    raise
                except _ZIP_ERRORS as exc:
                    raise self.error(f"corrupt 'sensor' member: {exc}") from None
                try:
                    self.sensor = SensorSize(int(values[0]), int(values[1]))
                except (ValueError, IndexError, OverflowError, TypeError) as exc:  # inf, short, non-numeric
                    raise self.error(f"bad 'sensor' member: {exc}") from None
            float_times = self._float_times(z)
        if float_times is not None:  # a float column records no unit
            time_unit = float_column_time_unit(*float_times, time_unit, self.source)
        self.time_unit = "us" if time_unit is None else time_unit
        self.time_scale = time_scale_to_us(self.time_unit)

    def _float_times(self, z: zipfile.ZipFile) -> tuple[np.ndarray, float, int] | None:
        """``(first timestamps, last timestamp, count)`` when the ``t`` column is float, else None."""
        member = self.members.get("events") or self.members["t"]
        try:
            with z.open(member) as fp:
                stream = _NpyStream(fp, member, self.source)
                field = "t" if "events" in self.members else None
                if field is not None and "t" not in (stream.dtype.names or ()):
                    return None  # the layout error comes from _chunks
                kind = stream.dtype[field].kind if field is not None else stream.dtype.kind
                if kind != "f" or not stream.length:
                    return None
                sample = last = stream.read(FLOAT_UNIT_SAMPLE)
                if stream.length > len(sample):
                    stream.skip_to(stream.length - 1)
                    last = stream.read(1)
        except EventFormatError:
            raise
        except _ZIP_ERRORS as exc:
            raise self.error(f"corrupt archive: {exc}") from None
        if field is not None:
            sample, last = sample[field], last[field]
        return sample, float(last[-1]), stream.length

    def _zip(self) -> zipfile.ZipFile:
        try:
            return zipfile.ZipFile(self.path)
        except _ZIP_ERRORS as exc:
            raise self.error(f"not a readable .npz archive ({exc})") from None

    def locate(self, event_index: int) -> str:
        return f"element {event_index}"

    def _chunks(self) -> Iterator[np.ndarray]:
        with self._zip() as z, ExitStack() as stack:
            try:
                streams = {c: _NpyStream(stack.enter_context(z.open(m)), m, self.source) for c, m in self.members.items()}
            except EventFormatError:
                raise
            except _ZIP_ERRORS as exc:
                raise self.error(f"corrupt archive: {exc}") from None
            lengths = {s.length for s in streams.values()}
            if len(lengths) != 1:
                raise self.error(f"columns of different lengths: { {c: s.length for c, s in streams.items()} }")
            if "events" in streams:
                names = streams["events"].dtype.names or ()
                if not set("txyp") <= set(names):
                    raise self.error(f"'events' must be a structured array with fields t, x, y, p, got {names}")
            total = lengths.pop()
            for start in range(0, total, self.chunk_events):
                if "events" in streams:
                    rec = streams["events"].read(self.chunk_events)
                    t, x, y, p = (rec[c] for c in "txyp")
                else:
                    t, x, y, p = (streams[c].read(self.chunk_events) for c in "txyp")
                yield self.columns_to_events(t, x, y, p, start, self.time_scale)


def write_npz(path: str | Path, events: np.ndarray, sensor: SensorSize | None = None, compress: bool = True) -> Path:
    """Write events as ``t, x, y, p`` columns (+ ``sensor``) to an ``.npz`` archive."""
    arrays = {c: np.ascontiguousarray(events[c]) for c in "txyp"}
    if sensor is not None:
        arrays["sensor"] = np.array([sensor.width, sensor.height], dtype=np.int64)
    if compress:
        np.savez_compressed(path, **arrays)  # type: ignore[arg-type]
    else:
        np.savez(path, **arrays)  # type: ignore[arg-type]
    return Path(path)
