"""Event-ReId (Ahmad et al., ICCV 2023) as a dataset of passes, in either layout the authors publish.

Both layouts are read behind the synthetic world's dataset interface (``sensor``, ``passes``,
``load_pass``, ``identities``), so the training clip builder (:func:`anonreid.models.data.build_clips`)
reads them as it reads the world:

* the **chunk-and-list** layout (the authors' sample data): 33.3 ms chunk files ``NNN_cC_KKK.txt``
  named by the list files ``train_list.txt``, ``query_list.txt`` and ``gallery_list.txt`` (lines
  ``<relative path> <id>``; the test lists take every 5th chunk). Every listed chunk is a pass of one
  window; its box is the extent of its events (the authors removed the events outside the person's
  box). The chunk files record neither their sensor size (give it: Event-ReId's cameras are 640x480)
  nor their time unit (ticks of 100 us in the authors' files; inferred when not given, with a
  warning). The lists *are* the split: the test identities are those of the query and gallery lists.
* the **full** layout: ``<ID>/camNN/events.txt`` (``width height`` header) with ``labels/*.json`` boxes
  per 33.3 ms window. The split is ``train_ids.txt`` / ``test_ids.txt`` in the root when present
  (:func:`anonreid.events.world.export.export_event_reid` writes them), else the official one of the
  authors' ``data/README.md`` (:data:`OFFICIAL_TEST_IDS`). The time unit, when not given, is inferred
  from the first pass's span against its labelled windows (with a warning) and every other pass is
  checked against it.

The dataset has no reference frames: ``frames`` are zeros, and every check that needs them is
reported as not available by the evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from anonreid.events.io.event_reid import (
    ChunkSequence,
    open_event_reid,
    open_event_reid_list,
    parse_chunk_name,
    read_labels,
    read_list_file,
    text_time_unit,
)
from anonreid.events.io.text import TextReader
from anonreid.events.types import EventFormatError, SensorSize, concat_events
from anonreid.events.windowing import DEFAULT_WINDOW_US
from anonreid.events.world.dataset import PassData, PassInfo

__all__ = [
    "LIST_FILES",
    "OFFICIAL_EVERY",
    "OFFICIAL_TEST_IDS",
    "OFFICIAL_TRAIN_IDS",
    "EventReidDataset",
    "listed_identities",
    "open_event_reid_dataset",
]

#: the authors' split (IIT-PAVIS/ReId_without_Id, data/README.md), for the full layout without split files
OFFICIAL_TEST_IDS = ("002", "005", "008", "011", "014", "017", "020", "023", "026", "029", "032")
OFFICIAL_TRAIN_IDS = tuple(f"{i:03d}" for i in range(1, 34) if f"{i:03d}" not in OFFICIAL_TEST_IDS)
#: the test set takes every 5th window (the authors' protocol)
OFFICIAL_EVERY = 5
#: the list files of the chunk-and-list layout, by role
LIST_FILES = {"train": "train_list.txt", "query": "query_list.txt", "gallery": "gallery_list.txt"}

Layout = Literal["lists", "full"]


@dataclass
class EventReidDataset:
    """Passes of one split of an Event-ReId root (see the module docstring); ``PassInfo.split`` is the
    pass's role: ``query`` / ``gallery`` (official lists), ``test`` or ``train``."""

    root: Path
    layout: Layout
    sensor: SensorSize
    passes: list[PassInfo]
    time_unit: str | float
    window_us: int
    files: dict[str, Path]

    @property
    def fingerprint(self) -> str:
        """Names the data a model was trained or evaluated on (checkpoints, clip caches); ``event-reid:``
        first, as :mod:`anonreid.models.evaluation.protocol` tells real data from a world by it."""
        return f"event-reid:{self.root.resolve()}:{self.layout}:{self.time_unit}:{self.sensor}"

    def identities(self, split: str | None = None) -> list[str]:
        roles = {"test": ("test", "query", "gallery")}.get(split or "", (split,))
        return sorted({p.identity for p in self.passes if split is None or p.split in roles})

    def roles(self) -> dict[str, str]:
        """pass id -> role (``query``, ``gallery``, ``test``, ``train``)."""
        return {p.pass_id: p.split for p in self.passes}

    def load_pass(self, pass_id: str) -> PassData:
        info = next(p for p in self.passes if p.pass_id == pass_id)
        if self.layout == "lists":
            return self._load_chunk(info)
        return self._load_recording(info)

    def _load_chunk(self, info: PassInfo) -> PassData:
        path = self.files[info.pass_id]
        reader = TextReader(path, self.sensor, time_unit=self.time_unit, polarity="01", header="none")
        events = concat_events(list(reader))
        boxes = np.full((1, 4), np.nan, np.float32)
        t0 = int(events["t"][0]) if len(events) else 0
        if len(events):  # the authors removed the events outside the person's box: their extent is the box
            boxes[0] = (events["x"].min(), events["y"].min(), events["x"].max() + 1, events["y"].max() + 1)
        frames = np.zeros((1, self.sensor.height, self.sensor.width), np.uint8)
        return PassData(events, frames, np.array([t0], np.int64), boxes, self.sensor, info.identity, info.camera)

    def _load_recording(self, info: PassInfo) -> PassData:
        path = self.files[info.pass_id]
        reader = open_event_reid(path, time_unit=self.time_unit, window_us=self.window_us)
        events = concat_events(list(reader))
        labels = [b for f in sorted((path.parent / "labels").glob("*.json")) for b in read_labels(f)]
        n = max([b.frame + 1 for b in labels] + [1])
        boxes = np.full((n, 4), np.nan, np.float32)
        for b in labels:
            boxes[b.frame] = b.box
        t0 = int(events["t"][0]) if len(events) else 0
        frame_ts = t0 + np.arange(n, dtype=np.int64) * self.window_us
        frames = np.zeros((n, self.sensor.height, self.sensor.width), np.uint8)
        return PassData(events, frames, frame_ts, boxes, self.sensor, info.identity, info.camera)


def open_event_reid_dataset(
    root: str | Path,
    split: Literal["train", "test"] = "test",
    time_unit: str | float | None = None,
    sensor: SensorSize | None = None,
    window_us: int = DEFAULT_WINDOW_US,
) -> EventReidDataset:
    """The ``split`` of the Event-ReId data at ``root``: the chunk-and-list layout when ``root`` holds
    its list files, else the full layout (module docstring). ``time_unit`` None: inferred, with a
    :class:`~anonreid.events.io.time_units.TimeUnitWarning`; ``sensor``: required for chunk files."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: Event-ReId root directory not found")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    roles = ("train",) if split == "train" else ("query", "gallery")
    if all((root / LIST_FILES[r]).is_file() for r in roles):
        return _open_lists(root, roles, time_unit, sensor, window_us)
    present = [LIST_FILES[r] for r in LIST_FILES if (root / LIST_FILES[r]).is_file()]
    if present:
        missing = [LIST_FILES[r] for r in roles if not (root / LIST_FILES[r]).is_file()]
        raise FileNotFoundError(f"{root}: has {', '.join(present)} but not {', '.join(missing)} (the {split} lists)")
    return _open_full(root, split, time_unit, sensor, window_us)


def listed_identities(root: str | Path, split: Literal["train", "test"] = "test") -> list[str]:
    """The identities of ``split`` at ``root`` without reading an event: the ids of its list files
    (chunk-and-list layout), else those of the split files or the official split that have a folder."""
    root = Path(root)
    roles = ("train",) if split == "train" else ("query", "gallery")
    if all((root / LIST_FILES[r]).is_file() for r in roles):
        return sorted({ident for r in roles for _, ident in read_list_file(root / LIST_FILES[r])})
    return sorted(i for i in _split_ids(root, split)[0] if (root / i).is_dir())


def _open_lists(
    root: Path, roles: Sequence[str], time_unit: str | float | None, sensor: SensorSize | None, window_us: int,
) -> EventReidDataset:
    if sensor is None:
        raise ValueError(f"{root}: Event-ReId chunk files do not record their sensor size; give it "
                         "(--sensor WxH, config events.sensor; the Event-ReId cameras are 640x480)")
    passes: list[PassInfo] = []
    files: dict[str, Path] = {}
    unit = time_unit
    for role in roles:
        list_file = root / LIST_FILES[role]
        # validates every line (files exist, names parse, one id per identity and camera), resolves the
        # unit once (inferred from the first list, with its warning) and checks it against the others
        sequences: list[ChunkSequence] = open_event_reid_list(list_file, root, time_unit=unit, window_us=window_us,
                                                              sensor=sensor, gaps="ignore")
        unit = sequences[0].time_unit
        for rel, ident in read_list_file(list_file):
            name = parse_chunk_name(rel)
            pass_id = f"{role}:{rel}"
            if pass_id in files:
                raise EventFormatError(str(list_file), f"{rel} is listed twice")
            files[pass_id] = root / rel
            passes.append(PassInfo(pass_id, ident, f"cam{name.camera}", role, 1))
    assert unit is not None
    return EventReidDataset(root, "lists", sensor, passes, unit, window_us, files)


def _split_ids(root: Path, split: str) -> tuple[list[str], str]:
    """The identities of ``split`` and where they come from."""
    listed = root / f"{split}_ids.txt"
    if listed.is_file():
        return [line.strip() for line in listed.read_text().splitlines() if line.strip()], str(listed)
    return list(OFFICIAL_TEST_IDS if split == "test" else OFFICIAL_TRAIN_IDS), "the official Event-ReId split"


def _open_full(
    root: Path, split: str, time_unit: str | float | None, sensor: SensorSize | None, window_us: int,
) -> EventReidDataset:
    ids, origin = _split_ids(root, split)
    passes: list[PassInfo] = []
    files: dict[str, Path] = {}
    for ident in ids:
        for cam_dir in sorted((root / ident).glob("cam*")):
            path = cam_dir / "events.txt"
            if path.is_file():
                pass_id = f"{ident}_{cam_dir.name}"
                files[pass_id] = path
                passes.append(PassInfo(pass_id, ident, cam_dir.name, split, 0))
    if not passes:
        found = sorted(p.parent.parent.name for p in root.glob("*/cam*/events.txt"))
        raise FileNotFoundError(
            f"{root}: no <ID>/cam*/events.txt for the {split} identities of {origin} ({', '.join(ids[:12])}); "
            f"found {', '.join(sorted(set(found))[:12]) or 'none'}; or give the chunk-and-list layout "
            f"({', '.join(LIST_FILES.values())})"
        )
    first = files[passes[0].pass_id]
    unit = text_time_unit(first, time_unit, window_us)  # inferred once (with its warning); the others are checked
    reader = open_event_reid(first, sensor, time_unit=unit, window_us=window_us)
    assert reader.sensor is not None  # the header is required
    return EventReidDataset(root, "full", reader.sensor, passes, unit, window_us, files)
