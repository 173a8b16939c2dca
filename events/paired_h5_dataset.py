"""Paired events and frames in HDF5 (the E2VID / event_cnn_minimal layout) as a dataset of passes.

A user's own recordings with intensity frames (a DAVIS's APS frames, or a frame camera aligned pixel for
pixel with the event sensor) are what the reconstruction attacker E_rec learns from: raw events ->
the frame. Each ``.h5`` / ``.hdf5`` file is one **recording** read by
:class:`~anonreid.events.io.hdf5.Hdf5Reader`:

* ``events/xs, ys, ts, ps`` (``ts`` float seconds, or integers in ``time_unit``; us when not given);
* ``images/<name>``: uint8 ``(H, W)`` grey frames, each with the attribute ``timestamp`` in the unit of
  ``events/ts`` (or the project's own ``frames`` + ``frame_ts`` in us);
* root attribute ``sensor_resolution`` = (H, W) (or ``width`` / ``height``), else ``sensor`` is needed.

Samples follow the camera node: the recording is cut into fixed windows (``window_us``, 33.3 ms) from
its first event, and the **reference of a window is the frame at or before the window's end**, the
latest one, provided it is no older than ``max(window_us, the median frame interval)``; windows without
one (before the first frame, after the last, across a gap in the frames) are not used. Frames of
another size than the sensor are resized to it (bilinear with antialiasing, :func:`resize_frames`;
a warning when the aspect ratio differs, since such frames are then not pixel-aligned with the events).
Each window's "box" is a sensor-sized box centred on the median position of its events (the frame
centre when it has fewer than two), so that the clip builder's tiles (``data.tile_hw``) follow the
activity; recordings have no identities, and a recording's name (its path under the root, without the
suffix) takes an identity's place.

Validation (``val_recordings``): the last N recordings (by name) whole; with 0, the last
:data:`VAL_FRACTION` of every recording's usable windows (by time, disjoint from the training windows).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from anonreid.events.io.hdf5 import Hdf5Reader
from anonreid.events.io.time_units import unit_name
from anonreid.events.types import EventFormatError, SensorSize
from anonreid.events.windowing import DEFAULT_WINDOW_US
from anonreid.events.world.dataset import PassData, PassInfo

__all__ = ["SUFFIXES", "VAL_FRACTION", "PairedH5Dataset", "Recording", "open_paired_h5_dataset", "resize_frames"]

log = logging.getLogger(__name__)

#: the files a directory root contributes (searched recursively)
SUFFIXES = (".h5", ".hdf5")
#: with no held-out recordings, this last fraction of every recording's usable windows validates
VAL_FRACTION = 0.2

Split = Literal["train", "val"]


@dataclass(frozen=True)
class Recording:
    """One paired file: its window grid and, per window, the index of its reference frame (-1: none)."""

    name: str
    path: Path
    num_events: int
    first_us: int
    last_us: int
    frame_ts: np.ndarray  # (F,) us, strictly increasing
    frame_hw: tuple[int, int]
    starts: np.ndarray  # (N,) window starts, us
    reference: np.ndarray  # (N,) frame index per window, -1 when the window has none

    @property
    def usable(self) -> np.ndarray:
        return self.reference >= 0


@dataclass
class PairedH5Dataset:
    """Passes of paired recordings behind the world's dataset interface (``sensor``, ``passes``,
    ``load_pass``, ``identities``); ``passes`` are one split's (:meth:`split`)."""

    root: Path
    sensor: SensorSize
    time_unit: str | float
    window_us: int
    recordings: dict[str, Recording]
    segments: dict[str, tuple[str, int, int]]  # pass id -> (recording, first window, end window)
    passes: list[PassInfo] = field(default_factory=list)

    @property
    def fingerprint(self) -> str:
        """Names the data (checkpoints, clip caches): ``paired-h5:`` root, unit, sensor and a digest of
        the files (name, size, events, frames)."""
        h = hashlib.sha256()
        for name, rec in sorted(self.recordings.items()):
            h.update(f"{name}:{rec.path.stat().st_size}:{rec.num_events}:{len(rec.frame_ts)};".encode())
        return f"paired-h5:{self.root.resolve()}:{unit_name(self.time_unit)}:{self.sensor}:{h.hexdigest()[:16]}"

    def split(self, which: Split) -> PairedH5Dataset:
        """The same recordings with only the ``which`` passes."""
        all_passes = [PassInfo(pid, rec, "cam1", pid.rsplit(":", 1)[1], end - start)
                      for pid, (rec, start, end) in self.segments.items()]
        return dataclasses.replace(self, passes=[p for p in all_passes if p.split == which])

    def identities(self, split: str | None = None) -> list[str]:
        return sorted({p.identity for p in self.passes if split is None or p.split == split})

    def load_pass(self, pass_id: str) -> PassData:
        name, start, end = self.segments[pass_id]
        rec = self.recordings[name]
        reader = Hdf5Reader(rec.path, self.sensor, time_unit=self.time_unit)
        t_from, t_to = int(rec.starts[start]), int(rec.starts[end - 1]) + self.window_us
        events = reader.read_time_range(t_from, t_to)  # the segment's slice only, not the whole recording
        ref = rec.reference[start:end]
        frames = np.zeros((end - start, self.sensor.height, self.sensor.width), np.uint8)
        used = np.unique(ref[ref >= 0])
        if len(used):
            got = resize_frames(reader.read_frames(used), self.sensor, str(rec.path))
            frames[ref >= 0] = got[np.searchsorted(used, ref[ref >= 0])]
        return PassData(events, frames, rec.starts[start:end].copy(), _activity_boxes(events, rec.starts[start:end],
                        ref, self.window_us, self.sensor), self.sensor, name, "cam1")


def _activity_boxes(events: np.ndarray, starts: np.ndarray, ref: np.ndarray, window_us: int,
                    sensor: SensorSize) -> np.ndarray:
    """A sensor-sized box per window centred on its events' median position (NaN: no reference)."""
    boxes = np.full((len(starts), 4), np.nan, np.float32)
    lo, hi = np.searchsorted(events["t"], starts), np.searchsorted(events["t"], starts + window_us)
    for k in np.flatnonzero(ref >= 0):
        part = events[lo[k] : hi[k]]
        cx, cy = ((float(np.median(part["x"])) + 0.5, float(np.median(part["y"])) + 0.5) if len(part) >= 2
                  else (sensor.width / 2, sensor.height / 2))
        boxes[k] = (cx - sensor.width / 2, cy - sensor.height / 2, cx + sensor.width / 2, cy + sensor.height / 2)
    return boxes


def resize_frames(frames: np.ndarray, sensor: SensorSize, source: str = "frames") -> np.ndarray:
    """``frames`` (N, h, w) uint8 at the sensor's size (N, H, W): bilinear with antialiasing
    (``torch.nn.functional.interpolate(..., antialias=True)``, half-pixel centres), rounded; as is when
    they already are. Warns when the aspect ratio differs by more than 1 %."""
    h, w = frames.shape[1:]
    if (h, w) == (sensor.height, sensor.width):
        return frames
    import torch
    import torch.nn.functional as F

    if abs((w / h) / (sensor.width / sensor.height) - 1) > 0.01:
        warnings.warn(f"{source}: frames are {w}x{h}, the events' sensor {sensor}: resized to it, changing the "
                      "aspect ratio (frames that are not pixel-aligned with the events give E_rec a wrong target)",
                      UserWarning, stacklevel=2)
    x = torch.from_numpy(np.ascontiguousarray(frames)).float()[:, None]
    out = F.interpolate(x, size=(sensor.height, sensor.width), mode="bilinear", align_corners=False, antialias=True)
    return out[:, 0].round().clamp(0, 255).to(torch.uint8).numpy()


def _files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such file or directory (paired HDF5 recordings)")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file())
    if not files:
        raise FileNotFoundError(f"{root}: no {' / '.join(SUFFIXES)} files (paired HDF5 recordings) under it")
    return files


def _recording(path: Path, name: str, reader: Hdf5Reader, window_us: int) -> Recording:
    source = str(path)
    if reader.frame_layout() is None:
        raise EventFormatError(source, "no frames: expected the group images/ (one uint8 dataset per frame with "
                                       "attribute 'timestamp'), or frames + frame_ts")
    times = reader.frame_times()
    assert times is not None
    first = reader.read_frames([0])[0]  # checks dtype and layout of one frame now, every one when read
    if reader.num_events < 2:
        raise EventFormatError(source, f"{reader.num_events} events in {reader.group}/ts: nothing to learn from")
    first_us, last_us = reader.span_us()
    n = (last_us + 1 - first_us) // window_us
    starts = first_us + np.arange(max(n, 0), dtype=np.int64) * window_us
    ends = starts + window_us
    j = np.searchsorted(times, ends, side="right") - 1
    max_age = max(window_us, float(np.median(np.diff(times)))) if len(times) > 1 else window_us
    ok = (j >= 0) & (ends - times[np.clip(j, 0, None)] <= max_age)
    reference = np.where(ok, j, -1).astype(np.int64)
    if not ok.any():
        span = f"{first_us / 1e6:.6g} s to {last_us / 1e6:.6g} s"
        frames = f"{times[0] / 1e6:.6g} s to {times[-1] / 1e6:.6g} s"
        what = (f"the events span less than one {window_us / 1e3:.4g} ms window ({span})" if not n else
                f"no frame timestamp falls inside the events' time span: events/ts covers {span}, the frames' "
                f"timestamps {frames} (read in {unit_name(reader.time_unit)}); both must be in one unit, "
                "that of events/ts (give it with --time-unit, config events.time_unit)")
        raise EventFormatError(source, f"no window with a reference frame: {what}", "images")
    return Recording(name, path, reader.num_events, first_us, last_us, times, first.shape, starts, reference)


def open_paired_h5_dataset(
    root: str | Path,
    time_unit: str | float | None = None,
    sensor: SensorSize | None = None,
    window_us: int = DEFAULT_WINDOW_US,
    val_recordings: int = 0,
) -> PairedH5Dataset:
    """The paired recordings at ``root`` (a file, or a directory searched for ``.h5`` / ``.hdf5``), with
    their training and validation passes (module docstring; :meth:`PairedH5Dataset.split`).

    ``time_unit`` None: a float ``events/ts`` has its unit inferred from the first file (with a
    :class:`~anonreid.events.io.time_units.TimeUnitWarning`), which the others are then read in; integers
    are us. ``sensor`` None: each file's attributes, which must agree."""
    root = Path(root)
    files = _files(root)
    unit: str | float | None = time_unit
    found: SensorSize | None = sensor
    recordings: dict[str, Recording] = {}
    for path in files:
        reader = Hdf5Reader(path, sensor, time_unit=unit)
        unit = reader.time_unit
        if reader.sensor is None:
            raise EventFormatError(str(path), "no sensor size: the file has no root attribute sensor_resolution (H, W) "
                                              "or width / height; give it with --sensor WxH (config events.sensor)")
        if found is None:
            found = reader.sensor
        elif reader.sensor != found:
            raise EventFormatError(str(path), f"sensor {reader.sensor} (root attributes), but {files[0]} has {found}: "
                                              "one dataset is one sensor size (or give --sensor WxH)")
        name = path.stem if root.is_file() else str(path.relative_to(root).with_suffix(""))
        recordings[name] = _recording(path, name, reader, window_us)
    assert found is not None and unit is not None
    names = sorted(recordings)
    if val_recordings and val_recordings >= len(names):
        raise ValueError(f"data.val_identities = {val_recordings} recordings held out for validation, but {root} has "
                         f"{len(names)}: leave training recordings (or 0: validate on the last "
                         f"{VAL_FRACTION:.0%} of every recording)")
    segments: dict[str, tuple[str, int, int]] = {}
    for i, name in enumerate(names):
        rec = recordings[name]
        use = np.flatnonzero(rec.usable)
        if val_recordings:
            role: Split = "val" if i >= len(names) - val_recordings else "train"
            segments[f"{name}:{role}"] = (name, int(use[0]), int(use[-1]) + 1)
            continue
        if len(use) < 2:
            raise EventFormatError(str(rec.path), f"{len(use)} window with a reference frame: too short to hold out "
                                                  f"its last {VAL_FRACTION:.0%} for validation (more frames, or "
                                                  "validate on whole recordings: --set data.val_identities=N)")
        cut = int(use[len(use) - max(1, round(VAL_FRACTION * len(use)))])
        segments[f"{name}:train"] = (name, int(use[0]), cut)
        segments[f"{name}:val"] = (name, cut, int(use[-1]) + 1)
    for name in names:
        rec = recordings[name]
        log.info("%s: %d events, %d frames, %d of %d windows with a reference frame", rec.path, rec.num_events,
                 len(rec.frame_ts), int(rec.usable.sum()), len(rec.starts))
    return PairedH5Dataset(root, found, unit, window_us, recordings, segments)
