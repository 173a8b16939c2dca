"""Plain-text events: one ``t x y p`` row per line, optionally a first ``width height`` line.

This is also the Event-ReId ``events.txt`` format (header + integer us timestamps, polarity 0/1) and
its 33.3 ms chunk files (no header, float timestamps in another unit: pass ``time_unit``). Lines are
read in blocks of ``chunk_events`` and parsed by numpy; on a parse error the block is re-read line by
line to name the first bad line. Blank lines and ``#`` comments are skipped.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Literal

import numpy as np

from anonreid.events.io.base import EventReader, time_scale_to_us
from anonreid.events.types import EventFormatError, SensorSize, make_events

__all__ = ["TextReader", "format_text_rows"]

Polarity = Literal["auto", "01", "pm1"]
Header = Literal["auto", "required", "none"]


class TextReader(EventReader):
    """Reader for ``t x y p`` text files (see the module docstring).

    ``time_unit``: unit of the ``t`` column ("us", "ms", "s", "ns" or a multiplier to us).
    ``polarity``: "01" (0 = off), "pm1" (-1/+1) or "auto" (decided by the values seen, mixing is an error).
    ``header``: "auto" (a first line of two integers is ``width height``), "required" or "none".
    """

    format_name = "text"

    def __init__(
        self,
        path: str | Path,
        sensor: SensorSize | None = None,
        chunk_events: int = 1_000_000,
        time_unit: str | float = "us",
        polarity: Polarity = "auto",
        header: Header = "auto",
    ) -> None:
        super().__init__(path, sensor, chunk_events)
        if polarity not in ("auto", "01", "pm1"):
            raise ValueError(f"polarity must be 'auto', '01' or 'pm1', got {polarity!r}")
        if header not in ("auto", "required", "none"):
            raise ValueError(f"header must be 'auto', 'required' or 'none', got {header!r}")
        self.time_scale = time_scale_to_us(time_unit)
        self.polarity: Polarity = polarity
        self.header = header
        self._lines = np.zeros(0, dtype=np.int64)  # line numbers of the current chunk's events
        self._chunk_start = 0
        self.header_sensor = self._read_header() if header != "none" else None
        if self.header_sensor is not None:
            if sensor is not None and sensor != self.header_sensor:
                raise self.error(f"header says {self.header_sensor} but the sensor was given as {sensor}", "line 1")
            self.sensor = self.header_sensor

    def _read_header(self) -> SensorSize | None:
        try:
            with open(self.path, "rb") as f:
                first = f.readline(256)
        except OSError as exc:
            raise self.error(f"cannot open: {exc.strerror or exc}") from None
        fields = first.split()
        if len(fields) == 2 and all(v.isdigit() for v in fields):
            try:
                return SensorSize(int(fields[0]), int(fields[1]))
            except ValueError as exc:
                raise self.error(f"bad header: {exc}", "line 1") from None
        if self.header == "required":
            shown = first[:60].decode("ascii", "replace").strip()
            raise self.error(f"expected a 'width height' header line, got {shown!r}", "line 1")
        return None

    def locate(self, event_index: int) -> str:
        i = event_index - self._chunk_start
        if 0 <= i < len(self._lines):
            return f"line {int(self._lines[i])}"
        return f"event {event_index}"

    def _chunks(self) -> Iterator[np.ndarray]:
        line_no = 1
        mode = self.polarity
        with open(self.path, "rb") as f:
            if self.header_sensor is not None:
                f.readline()
                line_no = 2
            while True:
                block = list(islice(f, self.chunk_events))
                if not block:
                    return
                numbers = np.arange(line_no, line_no + len(block), dtype=np.int64)
                line_no += len(block)
                keep = [i for i, ln in enumerate(block) if ln.strip() and not ln.lstrip().startswith(b"#")]
                if len(keep) != len(block):
                    block = [block[i] for i in keep]
                    numbers = numbers[keep]
                if not block:
                    continue
                rows = self._parse(block, numbers)
                self._chunk_start += len(self._lines)
                self._lines = numbers
                p = rows[:, 3]
                mode = self._polarity_mode(p, mode)
                if mode == "01":
                    bad = (p != 0) & (p != 1)
                    if bad.any():
                        i = int(np.argmax(bad))
                        raise self.error(f"polarity {p[i]:g} is not 0 or 1", f"line {numbers[i]}")
                    p = np.where(p > 0, 1, -1)
                t = rows[:, 0] * self.time_scale if self.time_scale != 1.0 else rows[:, 0]
                try:
                    yield make_events(t, rows[:, 1], rows[:, 2], p, source=self.source, index_offset=self._chunk_start)
                except EventFormatError as exc:
                    raise self.relocate(exc) from None

    def _polarity_mode(self, p: np.ndarray, mode: Polarity) -> Polarity:
        if mode != "auto":
            return mode
        if (p == 0).any():
            return "01"
        if (p == -1).any():
            return "pm1"
        return "auto"  # only +1 so far: both conventions agree

    def _parse(self, block: list[bytes], numbers: np.ndarray) -> np.ndarray:
        try:
            rows = np.loadtxt(io.StringIO(b"".join(block).decode("ascii")), dtype=np.float64, ndmin=2)
            if rows.shape[1] == 4:
                return rows
        except (ValueError, UnicodeDecodeError):
            pass
        for raw, number in zip(block, numbers, strict=True):  # slow path: name the first bad line
            try:
                fields = raw.decode("ascii").split()
                values = [float(v) for v in fields]
            except (UnicodeDecodeError, ValueError):
                shown = raw[:60].decode("ascii", "replace").strip()
                raise self.error(f"expected 4 numbers 't x y p', got {shown!r}", f"line {number}") from None
            if len(values) != 4:
                raise self.error(f"expected 4 numbers 't x y p', got {len(values)} fields", f"line {number}")
        raise self.error("unparseable block", f"line {numbers[0]}")  # pragma: no cover - loadtxt disagreed


def format_text_rows(t: np.ndarray, x: np.ndarray, y: np.ndarray, p: np.ndarray) -> str:
    """``t x y p`` rows (integers) as text, one per line (used by the writers)."""
    table = np.column_stack([t.astype(np.int64), x.astype(np.int64), y.astype(np.int64), p.astype(np.int64)])
    buf = io.StringIO()
    np.savetxt(buf, table, fmt="%d")
    return buf.getvalue()
