"""The Event-ReId dataset layout (Ahmad et al., ICCV 2023).

* ``<ID>/<camNN>/events.txt``: first line ``width height``, then ``t x y p`` rows (us, polarity 0/1);
* ``labels/*.json`` boxes ``[[x1, y1, x2, y2], frame]`` (one pair per file, or a list of pairs);
* 33.3 ms chunk files ``<ID>_c<cam>_<NNN>.txt``: ``t x y p`` rows without header, float timestamps in a
  unit other than us (the authors' files count ticks of 100 us; ``time_unit``, else inferred from the
  known window length by :func:`~anonreid.events.io.time_units.infer_time_unit`);
* list files: lines ``<relative path> <id>`` (the authors' ``train_list.txt``, ``query_list.txt``,
  ``gallery_list.txt``; a list may take every Nth chunk of a sequence).

Neither layout records its time unit. :func:`text_time_unit` decides it for a text file that was not
given one: a chunk file's from its span (no chunk is longer than the window), an ``events.txt``'s
from its labelled windows; any other text file is read as us. Each of these says so with a
:class:`~anonreid.events.io.time_units.TimeUnitWarning`, and a given unit that the spans contradict is
an error naming ``--time-unit``.

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

from anonreid.events.io.text import TextReader, format_text_rows
from anonreid.events.io.time_units import (
    TIME_UNITS,
    check_chunk_spans,
    check_recording_span,
    infer_time_unit,
    nearest_time_unit,
    time_scale_to_us,
    warn_inferred,
)
from anonreid.events.types import EventFormatError, SensorSize, concat_events, validate_events
from anonreid.events.windowing import DEFAULT_WINDOW_US

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
    "text_time_unit",
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


def open_event_reid(
    path: str | Path, sensor: SensorSize | None = None, chunk_events: int = 1_000_000,
    time_unit: str | float | None = None, window_us: int = DEFAULT_WINDOW_US,
) -> TextReader:
    """Reader of an ``events.txt`` (header required, polarity 0/1); ``time_unit`` None: see
    :func:`text_time_unit` (inferred from the labelled windows, with a warning)."""
    unit = text_time_unit(path, time_unit, window_us)
    return TextReader(path, sensor, chunk_events, time_unit=unit, polarity="01", header="required")


def open_event_reid_chunk(
    path: str | Path, time_unit: str | float | None = None, sensor: SensorSize | None = None,
    chunk_events: int = 1_000_000, window_us: int = DEFAULT_WINDOW_US,
) -> TextReader:
    """Reader of a 33.3 ms chunk file (no header, float timestamps in ``time_unit``, polarity 0/1);
    ``time_unit`` None: inferred from the chunk's span, with a warning (see :func:`text_time_unit`)."""
    return _chunk_reader(path, text_time_unit(path, time_unit, window_us, chunk=True), sensor, chunk_events)


def _chunk_reader(path: str | Path, time_unit: str | float, sensor: SensorSize | None, chunk_events: int) -> TextReader:
    return TextReader(path, sensor, chunk_events, time_unit=time_unit, polarity="01", header="none")


def _labelled_windows(events_txt: Path) -> int:
    """Windows covered by an ``events.txt``'s labels (last labelled frame + 1; 0 without labels)."""
    frames = [b.frame for f in sorted((events_txt.parent / "labels").glob("*.json")) for b in read_labels(f)]
    return max(frames) + 1 if frames else 0


def text_time_unit(
    path: str | Path, time_unit: str | float | None = None, window_us: int = DEFAULT_WINDOW_US, chunk: bool | None = None,
) -> str | float:
    """The time unit to read text file ``path`` in, checked against what is known about it.

    ``chunk`` (default: the name is ``<ID>_c<cam>_<NNN>.txt``): the file is one window of at most
    ``window_us``; otherwise, when it is an ``events.txt`` with ``labels/`` beside it, it covers its
    labelled windows. A given ``time_unit`` that contradicts this is an :class:`EventFormatError`
    naming ``--time-unit``; without one the unit is inferred from it, with a
    :class:`~anonreid.events.io.time_units.TimeUnitWarning`; a text file with neither is read as us,
    with the warning too.
    """
    path = Path(path)
    source = str(path)
    if chunk is None:
        chunk = _CHUNK_NAME.match(path.name) is not None
    if chunk:
        span = chunk_span(path)
        if time_unit is not None:
            check_chunk_spans([span], time_unit, window_us, source)
            return time_unit
        try:
            unit = infer_time_unit([span], window_us)
        except ValueError as exc:
            raise EventFormatError(source, f"{exc}; give the unit with --time-unit (config events.time_unit)") from None
        warn_inferred(source, unit, f"its span ({span:g} units; a chunk is at most {window_us / 1e3:.4g} ms)")
        return unit
    windows = _labelled_windows(path) if path.name == "events.txt" else 0
    if windows:
        span = chunk_span(path, header=True)
        what, expected = f"its {windows} labelled windows", windows * window_us
        if time_unit is not None:
            check_recording_span(span, time_unit, expected, source, what)
            return time_unit
        try:
            unit = nearest_time_unit(span, expected)
        except ValueError as exc:
            raise EventFormatError(source, f"{exc}; give the unit with --time-unit (config events.time_unit)") from None
        check_recording_span(span, unit, expected, source, what, inferred=True)
        warn_inferred(source, unit, f"its span ({span:g} units) against {what} ({expected / 1e3:.4g} ms)")
        return unit
    if time_unit is not None:
        return time_unit
    warn_inferred(source, "us", "nothing (a text file does not record its unit; read as us)")
    return "us"


def _raw_timestamps(path: str | Path) -> Iterator[float]:
    """The raw first column of every ``t x y p`` line of a chunk file (its own unit), lazily."""
    with open(path, "rb") as f:
        for line in f:
            fields = line.split()
            if len(fields) == 4:
                yield _timestamp(fields[0], path)


def chunk_span(path: str | Path, header: bool = False) -> float:
    """Raw ``last - first`` timestamp of a ``t x y p`` text file (its own unit; with ``header`` the
    first line is skipped when it is ``width height``): for the time-unit checks. Reads only the
    first and the last lines."""
    first = last = None
    with open(path, "rb") as f:
        for line in f:
            fields = line.split()
            if len(fields) == 4:
                first = _timestamp(fields[0], path)
                break
            if fields and not (header and len(fields) == 2) and not line.lstrip().startswith(b"#"):
                break
        if first is None:
            return 0.0
        size = f.seek(0, 2)
        f.seek(max(0, size - 4096))
        for line in reversed(f.read().splitlines()):
            fields = line.split()
            if len(fields) == 4:
                last = _timestamp(fields[0], path)
                break
    return 0.0 if last is None else last - first


def _timestamp(field: bytes, path: str | Path) -> float:
    try:
        return float(field)
    except ValueError:
        raise EventFormatError(str(path), f"bad timestamp {field[:20]!r}") from None


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
            reader = _chunk_reader(entry.path, self.time_unit, self.sensor, self.chunk_events)
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
    window_us: int = DEFAULT_WINDOW_US,
    clock: Clock = "auto",
    sensor: SensorSize | None = None,
    chunk_events: int = 1_000_000,
    gaps: Literal["warn", "error", "ignore"] = "warn",
    sample: int = 16,
) -> list[ChunkSequence]:
    """The chunk-file sequences of an Event-ReId list file, sorted by (identity, camera).

    ``root`` (default: the list file's folder) is what the relative paths start from. ``time_unit``
    defaults to the unit inferred from the spans of up to ``sample`` chunk files spread over the list
    (:func:`~anonreid.events.io.time_units.infer_time_unit` with ``window_us``), with a
    :class:`~anonreid.events.io.time_units.TimeUnitWarning`; a given unit is checked against the same
    spans (an :class:`EventFormatError` naming ``--time-unit`` when they contradict it). The list is
    checked before any event is read: a line naming a missing file or a file that is not
    ``<ID>_c<cam>_<NNN>.txt``, a chunk number listed twice and one (identity, camera) under two ids are
    :class:`EventFormatError` naming the list file and line. A gap in the chunk numbers warns
    (:class:`ChunkGapWarning`), raises (``gaps="error"``) or, for lists that take every Nth chunk on
    purpose (the official query and gallery lists), is expected (``gaps="ignore"``).
    """
    source = str(list_file)
    if clock not in ("auto", "continuous", "restart"):
        raise ValueError(f"clock must be 'auto', 'continuous' or 'restart', got {clock!r}")
    if gaps not in ("warn", "error", "ignore"):
        raise ValueError(f"gaps must be 'warn', 'error' or 'ignore', got {gaps!r}")
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
            if cur.name.index != prev.name.index + 1 and gaps != "ignore":
                message = (f"chunks {prev.name.index + 1}..{cur.name.index - 1} of {ident_name} camera {camera} "
                           f"are missing (between lines {prev.line} and {cur.line})")
                if gaps == "error":
                    raise EventFormatError(source, message, f"line {cur.line}")
                warnings.warn(f"{source}: {message}", ChunkGapWarning, stacklevel=2)
    every = [e for key in sorted(groups) for e in groups[key]]
    picks = np.unique(np.linspace(0, len(every) - 1, min(sample, len(every))).round().astype(int))
    spans = [chunk_span(every[i].path) for i in picks]
    if time_unit is None:
        try:
            time_unit = infer_time_unit(spans, window_us)
        except ValueError as exc:
            raise EventFormatError(source, f"{exc}; pass time_unit= (--time-unit)") from None
        warn_inferred(source, time_unit, f"the spans of {len(spans)} of its chunk files (median "
                                         f"{float(np.median(spans)):g} units; a chunk is at most {window_us / 1e3:.4g} ms)")
    else:
        check_chunk_spans(spans, time_unit, window_us, f"{source} (chunk files)")
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
    window_us: int = DEFAULT_WINDOW_US,
    time_unit: str = "s",
    clock: Literal["continuous", "restart"] = "continuous",
    *,
    folder: str | None = None,
    windows: Iterable[int] | None = None,
    t_offset_us: int = 0,
) -> list[str]:
    """Write ``events`` as chunk files ``root/<folder>/<identity>_c<camera>_<NNN>.txt`` (``folder``
    defaults to ``identity``; the authors' sample puts them all in ``train/`` and ``test/``); return
    their paths relative to ``root`` (for a list file), in chunk order.

    Chunk ``NNN`` holds the events with ``NNN * window_us <= t < (NNN + 1) * window_us`` (windows from
    t = 0). Every window from the first event's to the last one's gets a file (an empty one when it
    has no events), or, with ``windows``, only those of the given indices that have events (a list
    that takes every Nth chunk). Timestamps are written as floats in ``time_unit`` (a power of ten from
    "ns" to "s", e.g. "100us" as in the authors' files) after adding ``t_offset_us`` (a sensor clock
    that does not start at 0), polarity as 0/1; with ``clock="restart"`` every file's timestamps start
    from its window's start, as :func:`open_event_reid_list` reads them.
    """
    if not re.fullmatch(r"[A-Za-z0-9-]+", identity):
        raise ValueError(f"bad identity {identity!r} (letters, digits and '-' only: '_' separates the name's parts)")
    if time_unit not in TIME_UNITS:
        raise ValueError(f"unknown time unit {time_unit!r}; use one of {', '.join(TIME_UNITS)}")
    if clock not in ("continuous", "restart"):
        raise ValueError(f"clock must be 'continuous' or 'restart', got {clock!r}")
    if folder is not None and not re.fullmatch(r"[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*", folder):
        raise ValueError(f"bad folder {folder!r}")
    validate_events(events, source=f"events for {identity} camera {camera}")
    folder = identity if folder is None else folder
    (Path(root) / folder).mkdir(parents=True, exist_ok=True)
    if not len(events):
        return []
    t = events["t"]
    if int(t[0]) < 0:
        raise ValueError("chunk windows start at t = 0; events before it cannot be written")
    per_us = 1.0 / TIME_UNITS[time_unit]
    decimals = max(0, math.ceil(math.log10(TIME_UNITS[time_unit]) - 1e-9))
    first, last = int(t[0]) // window_us, int(t[-1]) // window_us
    bounds = np.searchsorted(t, np.arange(first, last + 2, dtype=np.int64) * window_us)
    wanted = range(first, last + 1) if windows is None else sorted({int(k) for k in windows if first <= k <= last})
    out = []
    for k in wanted:
        part = events[bounds[k - first] : bounds[k - first + 1]]
        if windows is not None and not len(part):
            continue
        rel = f"{folder}/{identity}_c{camera}_{k:03d}.txt"
        origin = k * window_us if clock == "restart" else -t_offset_us
        rows = np.column_stack([(part["t"] - origin) * per_us, part["x"], part["y"], (part["p"] > 0).astype(np.int64)])
        with open(Path(root) / rel, "w") as f:
            np.savetxt(f, rows, fmt=[f"%.{decimals}f", "%d", "%d", "%d"])
        out.append(rel)
    return out
