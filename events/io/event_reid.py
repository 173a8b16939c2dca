"""The Event-ReId dataset layout (Ahmad et al., ICCV 2023).

* ``<ID>/<camNN>/events.txt``: first line ``width height``, then ``t x y p`` rows (us, polarity 0/1);
* ``labels/*.json`` boxes ``[[x1, y1, x2, y2], frame]`` (one pair per file, or a list of pairs);
* 33.3 ms chunk files ``<ID>_c<cam>_<NNN>.txt``: ``t x y p`` rows without header, float timestamps in a
  unit other than us (``time_unit``; :func:`infer_time_unit` finds it from the known window length);
* list files: lines ``<relative path> <id>``.

:func:`open_event_reid_list` is the way to consume the chunk files: it groups a list file's chunk files
by (identity, camera), orders them by chunk number ``NNN`` and returns one :class:`ChunkSequence` per
group, a streaming iterable of validated event chunks in us, sorted across chunk files.

Chunk clocks. The data contract wants one sorted us timeline per sequence. Chunk files either continue
one clock (``clock="continuous"``: timestamps are used as they are, converted to us) or restart it in
every file (``clock="restart"``: chunk ``NNN``'s timestamps are taken from 0 and offset by
``NNN * window_us``, so a missing chunk stays a gap in time). ``clock="auto"`` (default) decides per list
file from the first timestamps of the first chunks of every sequence: a continuous clock advances by
about a window from one chunk to the next, a restarting one does not (median step below half a window
means restart). A sequence of one chunk is read as continuous under ``auto``. Either way a chunk file
that starts before the previous one ends is an error naming the file and line.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from anonreid.events.io.base import TIME_UNITS, time_scale_to_us
from anonreid.events.io.text import TextReader, format_text_rows
from anonreid.events.types import EventFormatError, SensorSize, concat_events, validate_events

__all__ = [
    "ChunkEntry",
    "ChunkGapWarning",
    "ChunkName",
    "ChunkSequence",
    "LabelBox",
    "infer_time_unit",
    "open_event_reid",
    "open_event_reid_chunk",
    "open_event_reid_list",
    "parse_chunk_name",
    "read_labels",
    "read_list_file",
    "write_event_reid",
    "write_event_reid_chunks",
]

Clock = Literal["auto", "continuous", "restart"]

_CHUNK_NAME = re.compile(r"^(?P<identity>[^_/]+)_c(?P<camera>\d+)_(?P<index>\d+)\.txt$")


@dataclass(frozen=True)
class ChunkName:
    identity: str
    camera: int
    index: int


@dataclass(frozen=True)
class LabelBox:
    """A person box ``(x1, y1, x2, y2)`` in pixels on reference frame ``frame``."""

    box: tuple[float, float, float, float]
    frame: int


def parse_chunk_name(name: str | Path) -> ChunkName:
    """``"007_c2_015.txt"`` -> ``ChunkName("007", 2, 15)``; raises ValueError for other names."""
    match = _CHUNK_NAME.match(Path(name).name)
    if not match:
        raise ValueError(f"{name}: not an Event-ReId chunk name <ID>_c<cam>_<NNN>.txt")
    return ChunkName(match["identity"], int(match["camera"]), int(match["index"]))


def open_event_reid(path: str | Path, sensor: SensorSize | None = None, chunk_events: int = 1_000_000) -> TextReader:
    """Reader of an ``events.txt`` (header required, us timestamps, polarity 0/1)."""
    return TextReader(path, sensor, chunk_events, time_unit="us", polarity="01", header="required")


def open_event_reid_chunk(
    path: str | Path, time_unit: str | float, sensor: SensorSize | None = None, chunk_events: int = 1_000_000
) -> TextReader:
    """Reader of a 33.3 ms chunk file (no header, float timestamps in ``time_unit``, polarity 0/1)."""
    return TextReader(path, sensor, chunk_events, time_unit=time_unit, polarity="01", header="none")


def infer_time_unit(spans: Iterable[float], window_us: float = 33_333) -> str:
    """The unit ("s", "ms", "us", "ns") in which chunk time spans (last - first timestamp, raw numbers)
    best match the known window length: the one whose median span in us is closest to ``window_us`` on
    a log scale. Give the spans of several chunks; empty or zero spans are ignored."""
    values = np.asarray([s for s in spans if s > 0 and math.isfinite(s)], dtype=np.float64)
    if not len(values):
        raise ValueError("cannot infer the time unit: no chunk with a positive time span")
    median = float(np.median(values))
    return min(TIME_UNITS, key=lambda unit: abs(math.log(median * TIME_UNITS[unit] / window_us)))


def _raw_timestamps(path: str | Path) -> Iterator[float]:
    """The raw first column of every ``t x y p`` line of a chunk file (its own unit), lazily."""
    with open(path, "rb") as f:
        for line in f:
            fields = line.split()
            if len(fields) == 4:
                try:
                    yield float(fields[0])
                except ValueError:
                    raise EventFormatError(str(path), f"bad timestamp {fields[0][:20]!r}") from None


def chunk_span(path: str | Path) -> float:
    """Raw ``last - first`` timestamp of a chunk file (its own unit), for :func:`infer_time_unit`."""
    first = last = None
    for value in _raw_timestamps(path):
        first = value if first is None else first
        last = value
    return 0.0 if first is None or last is None else last - first


def _box_entry(item: Any, source: str, where: str) -> LabelBox:
    ok = (
        isinstance(item, list) and len(item) == 2 and isinstance(item[0], list) and len(item[0]) == 4
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in item[0])
        and isinstance(item[1], int) and not isinstance(item[1], bool)
    )
    if not ok:
        raise EventFormatError(source, f"expected [[x1, y1, x2, y2], frame], got {json.dumps(item)[:80]}", where)
    x1, y1, x2, y2 = (float(v) for v in item[0])
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)) or x2 < x1 or y2 < y1:
        raise EventFormatError(source, f"box {item[0]} is not finite with x1 <= x2, y1 <= y2", where)
    return LabelBox((x1, y1, x2, y2), int(item[1]))


def read_labels(path: str | Path) -> list[LabelBox]:
    """Boxes of a label JSON file: one ``[[x1, y1, x2, y2], frame]`` pair or a list of them."""
    source = str(path)
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EventFormatError(source, f"not a readable JSON label file: {exc}") from None
    if isinstance(data, list) and len(data) == 2 and isinstance(data[0], list) and not isinstance(data[1], list):
        return [_box_entry(data, source, "item 0")]
    if not isinstance(data, list):
        raise EventFormatError(source, f"expected a list of [[x1, y1, x2, y2], frame], got {type(data).__name__}")
    return [_box_entry(item, source, f"item {i}") for i, item in enumerate(data)]


def _list_lines(path: str | Path) -> list[tuple[int, str, str]]:
    """``(line number, relative path, identity)`` of each non-blank line of a list file."""
    out = []
    try:
        lines = Path(path).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise EventFormatError(str(path), f"cannot read list file: {exc}") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 2:
            raise EventFormatError(str(path), f"expected '<relative path> <id>', got {line[:80]!r}", f"line {number}")
        out.append((number, fields[0], fields[1]))
    return out


def read_list_file(path: str | Path) -> list[tuple[str, str]]:
    """``(relative path, identity)`` pairs of a list file (lines ``<relpath> <id>``)."""
    return [(rel, ident) for _, rel, ident in _list_lines(path)]


class ChunkGapWarning(UserWarning):
    """Chunk numbers of a sequence skip values (``gaps="warn"`` of :func:`open_event_reid_list`)."""


@dataclass(frozen=True)
class ChunkEntry:
    """One chunk file of a list file: its path, parsed name and the list line that named it."""

    path: Path
    name: ChunkName
    line: int


@dataclass(frozen=True)
class ChunkSequence:
    """The chunk files of one (identity, camera) in chunk order; iterating yields validated event chunks
    (us, sorted across files; see the module docstring for ``clock``). ``label`` is the list file's id."""

    identity: str
    camera: int
    label: str
    chunks: tuple[ChunkEntry, ...]
    time_unit: str | float
    clock: Literal["continuous", "restart"]
    window_us: int
    sensor: SensorSize | None = None
    chunk_events: int = 1_000_000
    list_file: str = ""

    def __iter__(self) -> Iterator[np.ndarray]:
        last_t: int | None = None
        last_path: Path | None = None
        for entry in self.chunks:
            reader = open_event_reid_chunk(entry.path, self.time_unit, self.sensor, self.chunk_events)
            offset = entry.name.index * self.window_us if self.clock == "restart" else 0
            first = True
            for chunk in reader:
                if offset:
                    chunk["t"] += offset
                if first and last_t is not None and int(chunk["t"][0]) < last_t:
                    hint = ("a chunk longer than the window" if self.clock == "restart"
                            else "the chunk clock restarts? open the list with clock='restart'")
                    raise EventFormatError(
                        str(entry.path),
                        f"starts at {int(chunk['t'][0])} us, before the end of the previous chunk file "
                        f"{last_path} ({last_t} us; {hint})",
                        reader.locate(0),
                    )
                first = False
                last_t, last_path = int(chunk["t"][-1]), entry.path
                yield chunk

    def read_all(self) -> np.ndarray:
        """All events of the sequence in one array."""
        return concat_events(list(self))


def _detect_clock(groups: Iterable[list[ChunkEntry]], scale: float, window_us: float) -> Literal["continuous", "restart"]:
    """``restart`` when the first timestamps of consecutive chunks advance by less than half a window
    per chunk number (median over the first chunks of every sequence), else ``continuous``."""
    steps = []
    for entries in groups:
        firsts = [(e.name.index, next(_raw_timestamps(e.path), None)) for e in entries[:4]]
        known = [(i, t * scale) for i, t in firsts if t is not None]
        steps += [(t2 - t1) / (i2 - i1) for (i1, t1), (i2, t2) in itertools.pairwise(known)]
    return "restart" if steps and float(np.median(steps)) < window_us / 2 else "continuous"


def open_event_reid_list(
    list_file: str | Path,
    root: str | Path | None = None,
    *,
    time_unit: str | float | None = None,
    window_us: int = 33_333,
    clock: Clock = "auto",
    sensor: SensorSize | None = None,
    chunk_events: int = 1_000_000,
    gaps: Literal["warn", "error"] = "warn",
    sample: int = 16,
) -> list[ChunkSequence]:
    """The chunk-file sequences of an Event-ReId list file, sorted by (identity, camera).

    ``root`` (default: the list file's folder) is what the relative paths start from. ``time_unit``
    defaults to the unit inferred from the spans of up to ``sample`` chunk files spread over the list
    (:func:`infer_time_unit` with ``window_us``). The list is checked before any event is read: a line
    naming a missing file or a file that is not ``<ID>_c<cam>_<NNN>.txt``, a chunk number listed twice
    and one (identity, camera) under two ids are :class:`EventFormatError` naming the list file and
    line. A gap in the chunk numbers warns (:class:`ChunkGapWarning`) or, with ``gaps="error"``, raises.
    """
    source = str(list_file)
    if clock not in ("auto", "continuous", "restart"):
        raise ValueError(f"clock must be 'auto', 'continuous' or 'restart', got {clock!r}")
    if gaps not in ("warn", "error"):
        raise ValueError(f"gaps must be 'warn' or 'error', got {gaps!r}")
    base = Path(root) if root is not None else Path(list_file).parent
    groups: dict[tuple[str, int], list[ChunkEntry]] = {}
    labels: dict[tuple[str, int], tuple[str, int]] = {}
    for number, rel, ident in _list_lines(list_file):
        where = f"line {number}"
        try:
            name = parse_chunk_name(rel)
        except ValueError:
            raise EventFormatError(source, f"{rel} is not a chunk file <ID>_c<cam>_<NNN>.txt", where) from None
        path = base / rel
        if not path.is_file():
            raise EventFormatError(source, f"{rel}: no such file under {base}", where)
        key = (name.identity, name.camera)
        label, first_line = labels.setdefault(key, (ident, number))
        if ident != label:
            raise EventFormatError(
                source, f"{rel} has id {ident!r} but line {first_line} gave {name.identity} camera {name.camera} id {label!r}",
                where)
        groups.setdefault(key, []).append(ChunkEntry(path, name, number))
    if not groups:
        raise EventFormatError(source, "the list file names no chunk file")
    for (ident_name, camera), entries in groups.items():
        entries.sort(key=lambda e: e.name.index)
        for prev, cur in itertools.pairwise(entries):
            if cur.name.index == prev.name.index:
                raise EventFormatError(
                    source, f"chunk {cur.name.index} of {ident_name} camera {camera} is listed twice "
                    f"(also on line {prev.line})", f"line {cur.line}")
            if cur.name.index != prev.name.index + 1:
                message = (f"chunks {prev.name.index + 1}..{cur.name.index - 1} of {ident_name} camera {camera} "
                           f"are missing (between lines {prev.line} and {cur.line})")
                if gaps == "error":
                    raise EventFormatError(source, message, f"line {cur.line}")
                warnings.warn(f"{source}: {message}", ChunkGapWarning, stacklevel=2)
    if time_unit is None:
        every = [e for key in sorted(groups) for e in groups[key]]
        picks = sorted({round(i * (len(every) - 1) / max(sample - 1, 1)) for i in range(min(sample, len(every)))})
        try:
            time_unit = infer_time_unit([chunk_span(every[i].path) for i in picks], window_us)
        except ValueError as exc:
            raise EventFormatError(source, f"{exc}; pass time_unit=") from None
    scale = time_scale_to_us(time_unit)
    resolved = clock if clock != "auto" else _detect_clock(groups.values(), scale, window_us)
    return [
        ChunkSequence(ident_name, camera, labels[(ident_name, camera)][0], tuple(groups[(ident_name, camera)]),
                      time_unit, resolved, window_us, sensor, chunk_events, source)
        for ident_name, camera in sorted(groups)
    ]


def _camera_dir(camera: str | int) -> str:
    if isinstance(camera, int):
        return f"cam{camera:02d}"
    if not re.fullmatch(r"[A-Za-z0-9_-]+", camera):
        raise ValueError(f"bad camera name {camera!r}")
    return camera


def write_event_reid(
    root: str | Path,
    identity: str,
    camera: str | int,
    events: np.ndarray,
    sensor: SensorSize,
    boxes: Sequence[tuple[Sequence[float], int]] | Sequence[LabelBox] | None = None,
) -> Path:
    """Write ``root/<identity>/<camera>/events.txt`` (+ ``labels/<frame>.json`` per box); return its path."""
    if not re.fullmatch(r"[A-Za-z0-9_-]+", identity):
        raise ValueError(f"bad identity {identity!r}")
    validate_events(events, sensor, source=f"events for {identity}/{camera}")
    folder = Path(root) / identity / _camera_dir(camera)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "events.txt"
    with open(path, "w") as f:
        f.write(f"{sensor.width} {sensor.height}\n")
        step = 1_000_000
        for i in range(0, len(events), step):
            part = events[i : i + step]
            f.write(format_text_rows(part["t"], part["x"], part["y"], (part["p"] > 0).astype(np.int64)))
    if boxes:
        labels = folder / "labels"
        labels.mkdir(exist_ok=True)
        for entry in boxes:
            box, frame = (entry.box, entry.frame) if isinstance(entry, LabelBox) else entry
            (labels / f"{int(frame):06d}.json").write_text(json.dumps([[float(v) for v in box], int(frame)]))
    return path


def write_event_reid_chunks(
    root: str | Path,
    identity: str,
    camera: int,
    events: np.ndarray,
    window_us: int = 33_333,
    time_unit: str = "s",
    clock: Literal["continuous", "restart"] = "continuous",
) -> list[str]:
    """Write ``events`` as chunk files ``root/<identity>/<identity>_c<camera>_<NNN>.txt``; return their
    paths relative to ``root`` (for a list file), in chunk order.

    Chunk ``NNN`` holds the events with ``NNN * window_us <= t < (NNN + 1) * window_us`` (windows from
    t = 0; empty windows between the first and last event give empty files). Timestamps are written as
    floats in ``time_unit`` ("s", "ms", "us" or "ns"), polarity as 0/1; with ``clock="restart"`` every
    file's timestamps start from its window's start, as :func:`open_event_reid_list` reads them.
    """
    if not re.fullmatch(r"[A-Za-z0-9-]+", identity):
        raise ValueError(f"bad identity {identity!r} (letters, digits and '-' only: '_' separates the name's parts)")
    if time_unit not in TIME_UNITS:
        raise ValueError(f"unknown time unit {time_unit!r}; use one of {sorted(TIME_UNITS)}")
    if clock not in ("continuous", "restart"):
        raise ValueError(f"clock must be 'continuous' or 'restart', got {clock!r}")
    validate_events(events, source=f"events for {identity} camera {camera}")
    folder = Path(root) / identity
    folder.mkdir(parents=True, exist_ok=True)
    if not len(events):
        return []
    t = events["t"]
    if int(t[0]) < 0:
        raise ValueError("chunk windows start at t = 0; events before it cannot be written")
    per_us = 1.0 / TIME_UNITS[time_unit]
    decimals = max(0, round(math.log10(TIME_UNITS[time_unit])))
    first, last = int(t[0]) // window_us, int(t[-1]) // window_us
    bounds = np.searchsorted(t, np.arange(first, last + 2, dtype=np.int64) * window_us)
    out = []
    for k in range(first, last + 1):
        part = events[bounds[k - first] : bounds[k - first + 1]]
        rel = f"{identity}/{identity}_c{camera}_{k:03d}.txt"
        stamps = (part["t"] - (k * window_us if clock == "restart" else 0)) * per_us
        rows = np.column_stack([stamps, part["x"], part["y"], (part["p"] > 0).astype(np.int64)])
        with open(Path(root) / rel, "w") as f:
            np.savetxt(f, rows, fmt=[f"%.{decimals}f", "%d", "%d", "%d"])
        out.append(rel)
    return out
