"""HDF5 events (``events/xs, ys, ts, ps``) and their frames through h5py.

Chunks are read as slices of the datasets, so a file of any size streams. ``ts`` may be integers (us
unless ``time_unit`` says otherwise) or floats: a float column records no unit, so without ``time_unit``
it is inferred from its values (:func:`~anonreid.events.io.time_units.float_column_time_unit`: whole
microseconds in the unit, e.g. seconds as E2VID's tools write them) with a ``TimeUnitWarning``, and a
unit (given or inferred) under which the events would come faster than any sensor reads out is an
error naming ``--time-unit``. ``ps`` may be 0/1, -1/+1 or bool. The sensor comes from the root attributes
``width``/``height`` (or ``sensor_resolution`` = (height, width), the E2VID convention) unless given.

Frames (:meth:`Hdf5Reader.frame_times`, :meth:`Hdf5Reader.read_frames`), in either of two layouts:

* ``images/<name>``: one dataset per frame, uint8 ``(H, W)`` grey (``(H, W, 1)``, or ``(H, W, 3)``
  turned to grey with the ITU-R BT.601 luma weights), each with the attribute ``timestamp`` in the
  **same unit as** ``events/ts``; frames are in the natural order of their names (``image2`` before
  ``image10``). The layout of the E2VID / event_cnn_minimal family (their ``h5`` packagers);
* ``frames`` ``(N, H, W)`` uint8 with ``frame_ts`` ``(N,)`` in us (what :func:`write_hdf5` writes).

Frame timestamps must be there (an ``images/*`` without ``timestamp``, ``frames`` without ``frame_ts``)
and strictly increasing; every error names the file and the dataset or attribute.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from anonreid.events.io.base import EventReader, time_scale_to_us
from anonreid.events.io.time_units import FLOAT_UNIT_SAMPLE, float_column_time_unit
from anonreid.events.types import EventFormatError, SensorSize, concat_events, validate_events

__all__ = ["Hdf5Reader", "write_hdf5"]

_COLUMNS = ("ts", "xs", "ys", "ps")
IMAGES = "images"  # the E2VID family's group of frames, one dataset per frame with attribute `timestamp`
_LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601, for (H, W, 3) frames
# what h5py raises on corrupt files (HDF5 errors surface as OSError, KeyError, ValueError or RuntimeError)
_H5_ERRORS = (OSError, KeyError, ValueError, RuntimeError, TypeError)


class Hdf5Reader(EventReader):
    """Streaming reader of ``events/{ts,xs,ys,ps}``; ``.frames()`` gives the optional frames lazily."""

    format_name = "hdf5"

    def __init__(
        self,
        path: str | Path,
        sensor: SensorSize | None = None,
        chunk_events: int = 1_000_000,
        time_unit: str | float | None = None,
        group: str = "events",
    ) -> None:
        super().__init__(path, sensor, chunk_events)
        self.group = group
        with self._open() as f:
            try:
                self.num_events = self._check_layout(f)
                if self.sensor is None:
                    self.sensor = self._sensor_from_attrs(f)
                ts = f[self.group]["ts"]
                sample = ts[:FLOAT_UNIT_SAMPLE] if ts.dtype.kind == "f" and self.num_events else None
                last = float(ts[self.num_events - 1]) if sample is not None else 0.0
            except EventFormatError:  # ours, already naming the place (a ValueError, as h5py's are)
                raise
            except _H5_ERRORS as exc:
                raise self.error(f"corrupt HDF5 metadata ({exc})") from None
        if sample is not None:  # a float column records no unit
            time_unit = float_column_time_unit(sample, last, self.num_events, time_unit, self.source)
        self.time_unit = "us" if time_unit is None else time_unit
        self.time_scale = time_scale_to_us(self.time_unit)

    def _open(self):  # type: ignore[no-untyped-def]
        import h5py

        try:
            return h5py.File(self.path, "r")
        except (OSError, ValueError) as exc:
            raise self.error(f"not a readable HDF5 file ({exc})") from None

    def _check_layout(self, f) -> int:  # type: ignore[no-untyped-def]
        if self.group not in f:
            raise self.error(f"no '{self.group}' group (expected {self.group}/xs, ys, ts, ps)")
        g = f[self.group]
        lengths = {}
        for name in _COLUMNS:
            if name not in g or not hasattr(g[name], "shape"):
                raise self.error(f"missing dataset {self.group}/{name}")
            ds = g[name]
            if ds.ndim != 1 or ds.dtype.kind not in "iufb":
                raise self.error(f"{self.group}/{name} must be a 1-d numeric dataset, got {ds.shape} {ds.dtype}")
            lengths[name] = ds.shape[0]
        if len(set(lengths.values())) != 1:
            raise self.error(f"datasets of different lengths: {lengths}")
        return int(lengths["ts"])

    def _sensor_from_attrs(self, f) -> SensorSize | None:  # type: ignore[no-untyped-def]
        try:
            if "width" in f.attrs and "height" in f.attrs:
                return SensorSize(int(f.attrs["width"]), int(f.attrs["height"]))
            if "sensor_resolution" in f.attrs:
                h, w = (int(v) for v in f.attrs["sensor_resolution"][:2])
                return SensorSize(w, h)
        except (ValueError, TypeError, OverflowError, IndexError) as exc:  # inf, strings, a scalar resolution
            raise self.error(f"bad sensor size attributes: {exc}") from None
        return None

    def locate(self, event_index: int) -> str:
        return f"{self.group}/ts[{event_index}]"

    def _chunks(self, first: int = 0, end: int | None = None) -> Iterator[np.ndarray]:
        """Events ``first`` to ``end`` (default: all), ``chunk_events`` at a time."""
        end = self.num_events if end is None else end
        with self._open() as f:
            g = f[self.group]
            for start in range(first, end, self.chunk_events):
                stop = min(start + self.chunk_events, end)
                try:
                    t, x, y, p = (g[name][start:stop] for name in _COLUMNS)
                except _H5_ERRORS as exc:
                    raise self.error(f"corrupt data ({exc})", f"{self.group}/*[{start}:{stop}]") from None
                yield self.columns_to_events(t, x, y, p, start, self.time_scale)

    def read_time_range(self, t_from: int, t_to: int) -> np.ndarray:
        """The events with ``t_from <= t < t_to`` (us), reading only their slice of each column: a binary
        search over single ``ts`` elements finds the slice (``ts`` must be sorted, as :meth:`span_us`
        checks), which is then read and validated as :meth:`read_all` reads the whole file."""
        import bisect

        with self._open() as f:
            ts = f[self.group]["ts"]
            scaled = ts.dtype.kind == "f" or self.time_scale != 1.0

            def us(i: int) -> int:  # as columns_to_events converts it: times the scale, to the nearest us
                return int(np.rint(float(ts[i]) * self.time_scale)) if scaled else int(ts[i])

            try:
                first = bisect.bisect_left(range(self.num_events), t_from, key=us)
                end = bisect.bisect_left(range(self.num_events), t_to, lo=first, key=us)
            except _H5_ERRORS as exc:
                raise self.error(f"corrupt data ({exc})", f"{self.group}/ts") from None
        return concat_events(self._validated(self._chunks(first, end), first))

    def span_us(self) -> tuple[int, int]:
        """First and last timestamp (us) of the events, after checking that ``ts`` never decreases: reads
        the ``ts`` column only, in chunks (the other columns are checked when the events are read)."""
        if not self.num_events:
            raise self.error(f"no events in {self.group}/ts")
        first, previous = 0.0, None
        with self._open() as f:
            ts = f[self.group]["ts"]
            for start in range(0, self.num_events, self.chunk_events):
                try:
                    col = np.asarray(ts[start : start + self.chunk_events], np.float64)
                except _H5_ERRORS as exc:
                    raise self.error(f"corrupt data ({exc})", f"{self.group}/ts[{start}:]") from None
                if previous is not None:
                    col = np.concatenate([[previous], col])
                back = np.flatnonzero(np.diff(col) < 0)
                if len(back):
                    i = start + int(back[0]) + (0 if previous is not None else 1)
                    raise self.error(f"timestamps go backwards ({col[back[0] + 1]:.12g} after {col[back[0]]:.12g}): "
                                     f"{self.group}/ts must be sorted", self.locate(i))
                if start == 0:
                    first = float(col[0])
                previous = float(col[-1])
        assert previous is not None
        return round(first * self.time_scale), round(previous * self.time_scale)

    def frames(self) -> tuple[np.ndarray, np.ndarray] | None:
        """``(frames (N, H, W) uint8, timestamps (N,) us)`` when the file has frames, else None (loads them
        all; :meth:`frame_times` and :meth:`read_frames` read only what is asked)."""
        times = self.frame_times()
        return None if times is None else (self.read_frames(), times)

    def frame_layout(self) -> str | None:
        """``"images"`` (``images/<name>`` + ``timestamp``), ``"frames"`` (``frames`` + ``frame_ts``) or None."""
        with self._open() as f:
            return _frame_layout(f)

    def frame_names(self) -> list[str]:
        """The datasets holding the frames in order: ``images/<name>`` in natural name order, or ``frames``."""
        with self._open() as f:
            layout = _frame_layout(f)
            if layout == IMAGES:
                return [f"{IMAGES}/{name}" for name in _natural(f[IMAGES].keys())]
            return ["frames"] if layout else []

    def frame_times(self) -> np.ndarray | None:
        """Timestamps of the frames (``(N,)`` int64 us, strictly increasing), None when the file has none:
        ``images/*`` attributes ``timestamp`` in the unit of ``events/ts``, or ``frame_ts`` in us. A frame
        without a timestamp, a timestamp that is not one finite number, or one not after the previous
        frame's is an error naming the dataset."""
        with self._open() as f:
            layout = _frame_layout(f)
            if layout is None:
                return None
            try:
                if layout == IMAGES:
                    names = _natural(f[IMAGES].keys())
                    if not names:
                        raise self.error(f"group {IMAGES} holds no frames", IMAGES)
                    raw = [self._timestamp(f[IMAGES][n], f"{IMAGES}/{n}") for n in names]
                    where = [f"{IMAGES}/{n}.attrs['timestamp']" for n in names]
                    us = np.asarray(raw, np.float64) * self.time_scale
                else:
                    if "frame_ts" not in f:
                        raise self.error("frames without frame_ts (their timestamps, us)", "frames")
                    ts, n_frames = f["frame_ts"], f["frames"].shape[0]
                    if ts.ndim != 1 or ts.dtype.kind not in "iuf" or ts.shape[0] != n_frames:
                        raise self.error(f"frame_ts must be a 1-d numeric dataset of {n_frames} timestamps (one per "
                                         f"frame), got {ts.shape} {ts.dtype}", "frame_ts")
                    us = np.asarray(ts[()], np.float64)
                    where = [f"frame_ts[{i}]" for i in range(len(us))]
            except EventFormatError:  # ours, already naming the place (a ValueError, as h5py's are)
                raise
            except _H5_ERRORS as exc:
                raise self.error(f"corrupt frame metadata ({exc})", layout) from None
        for i, value in enumerate(us):
            if not np.isfinite(value) or abs(value) >= 2.0**62:
                raise self.error(f"frame timestamp {value!r} us is not a finite time", where[i])
        times = np.round(us).astype(np.int64)
        back = np.flatnonzero(np.diff(times) <= 0)
        if len(back):
            i = int(back[0]) + 1
            raise self.error(f"frame timestamps must increase: {times[i]} us is not after the previous frame's "
                             f"{times[i - 1]} us ({where[i - 1]})", where[i])
        return times

    def _timestamp(self, ds, where: str) -> float:  # type: ignore[no-untyped-def]
        if not hasattr(ds, "shape"):
            raise self.error(f"{where} is a group, expected a frame dataset", where)
        if "timestamp" not in ds.attrs:
            raise self.error(f"frame without its 'timestamp' attribute (in the unit of {self.group}/ts)", where)
        value = np.asarray(ds.attrs["timestamp"])
        if value.size != 1 or value.dtype.kind not in "iuf":
            raise self.error(f"attribute 'timestamp' must be one number, got {value.dtype} {value.shape}",
                             f"{where}.attrs['timestamp']")
        return float(value.reshape(-1)[0])

    def read_frames(self, index: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """Frames ``index`` (all when None) as ``(n, H, W)`` uint8 grey, in the order of :meth:`frame_names`."""
        names = self.frame_names()
        index = np.arange(len(names) if names != ["frames"] else self._num_frames()) if index is None else index
        with self._open() as f:
            try:
                if names == ["frames"]:
                    ds = f["frames"]
                    if ds.ndim != 3 or ds.dtype != np.uint8:
                        raise self.error(f"frames must be (N, H, W) uint8, got {ds.shape} {ds.dtype}", "frames")
                    idx = np.asarray(index, np.int64)
                    uniq = np.unique(idx)  # h5py reads increasing indices
                    return ds[uniq][np.searchsorted(uniq, idx)] if len(idx) else np.zeros((0, *ds.shape[1:]), np.uint8)
                frames = [self._grey(f[names[int(i)]], names[int(i)]) for i in index]
            except EventFormatError:  # ours, already naming the place (a ValueError, as h5py's are)
                raise
            except _H5_ERRORS as exc:
                raise self.error(f"corrupt frames ({exc})", IMAGES if names != ["frames"] else "frames") from None
        shapes = {fr.shape for fr in frames}
        if len(shapes) > 1:
            first = frames[0].shape
            k = next(k for k, fr in enumerate(frames) if fr.shape != first)
            raise self.error(f"frames of different sizes: {frames[k].shape} here, {first} in "
                             f"{names[int(index[0])]}", names[int(index[k])])
        return np.stack(frames) if frames else np.zeros((0, 0, 0), np.uint8)

    def _num_frames(self) -> int:
        with self._open() as f:
            return int(f["frames"].shape[0])

    def _grey(self, ds, where: str) -> np.ndarray:  # type: ignore[no-untyped-def]
        shape, dtype = ds.shape, ds.dtype
        if dtype != np.uint8 or not (len(shape) == 2 or (len(shape) == 3 and shape[2] in (1, 3))):
            raise self.error(f"a frame must be uint8 (H, W) grey (or (H, W, 1), (H, W, 3)), got {shape} {dtype}", where)
        a = np.asarray(ds[()])
        if a.ndim == 3:
            a = a[..., 0] if a.shape[2] == 1 else np.clip(np.round(a @ _LUMA), 0, 255).astype(np.uint8)
        return a


def _frame_layout(f) -> str | None:  # type: ignore[no-untyped-def]
    if IMAGES in f and not hasattr(f[IMAGES], "shape"):
        return IMAGES
    return "frames" if "frames" in f else None


def _natural(names: Iterable[str]) -> list[str]:
    """Names in natural order: the digit runs compare as numbers (``image2`` before ``image10``)."""
    return sorted(names, key=lambda n: [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", n)])


def write_hdf5(
    path: str | Path,
    events: np.ndarray | Iterable[np.ndarray],
    sensor: SensorSize,
    frames: np.ndarray | None = None,
    frame_ts_us: np.ndarray | None = None,
) -> Path:
    """Write events (an array or an iterable of chunks, streamed) to ``events/{ts,xs,ys,ps}`` with the
    sensor as root attributes ``width``/``height``, and optional ``frames`` (N, H, W) + ``frame_ts``."""
    import h5py

    path = Path(path)
    chunks = [events] if isinstance(events, np.ndarray) else events
    dtypes = {"ts": np.int64, "xs": np.uint16, "ys": np.uint16, "ps": np.int8}
    fields = {"ts": "t", "xs": "x", "ys": "y", "ps": "p"}
    with h5py.File(path, "w") as f:
        f.attrs["width"] = sensor.width
        f.attrs["height"] = sensor.height
        g = f.create_group("events")
        for name, dt in dtypes.items():
            g.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dt, chunks=(1 << 16,), compression="gzip",
                             compression_opts=1, shuffle=True)
        n = 0
        last_t: int | None = None
        for chunk in chunks:
            validate_events(chunk, sensor, source=f"events written to {path}", index_offset=n, previous_t=last_t)
            if not len(chunk):
                continue
            for name, field in fields.items():
                ds = g[name]
                ds.resize((n + len(chunk),))
                ds[n:] = chunk[field]
            n += len(chunk)
            last_t = int(chunk["t"][-1])
        if frames is not None:
            frames = np.asarray(frames)
            f.create_dataset("frames", data=frames, chunks=(1, *frames.shape[1:]), compression="gzip",
                             compression_opts=1)
            ts = np.arange(len(frames), dtype=np.int64) if frame_ts_us is None else np.asarray(frame_ts_us, np.int64)
            if len(ts) != len(frames):
                raise ValueError(f"{len(frames)} frames but {len(ts)} frame timestamps")
            f.create_dataset("frame_ts", data=ts)
    return path
