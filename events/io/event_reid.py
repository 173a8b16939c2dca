"""The Event-ReId dataset layout (Ahmad et al., ICCV 2023).

* ``<ID>/<camNN>/events.txt``: first line ``width height``, then ``t x y p`` rows (us, polarity 0/1);
* ``labels/*.json`` boxes ``[[x1, y1, x2, y2], frame]`` (one pair per file, or a list of pairs);
* 33.3 ms chunk files ``<ID>_c<cam>_<NNN>.txt``: ``t x y p`` rows without header, float timestamps in a
  unit other than us (``time_unit``; :func:`infer_time_unit` finds it from the known window length);
* list files: lines ``<relative path> <id>``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from anonreid.events.io.base import TIME_UNITS
from anonreid.events.io.text import TextReader, format_text_rows
from anonreid.events.types import EventFormatError, SensorSize, validate_events

__all__ = [
    "ChunkName",
    "LabelBox",
    "infer_time_unit",
    "open_event_reid",
    "open_event_reid_chunk",
    "parse_chunk_name",
    "read_labels",
    "read_list_file",
    "write_event_reid",
]

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


def chunk_span(path: str | Path) -> float:
    """Raw ``last - first`` timestamp of a chunk file (its own unit), for :func:`infer_time_unit`."""
    first = last = None
    with open(path, "rb") as f:
        for line in f:
            fields = line.split()
            if len(fields) == 4:
                try:
                    value = float(fields[0])
                except ValueError:
                    raise EventFormatError(str(path), f"bad timestamp {fields[0][:20]!r}") from None
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


def read_list_file(path: str | Path) -> list[tuple[str, str]]:
    """``(relative path, identity)`` pairs of a list file (lines ``<relpath> <id>``)."""
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
        out.append((fields[0], fields[1]))
    return out


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
