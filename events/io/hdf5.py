"""HDF5 events (``events/xs, ys, ts, ps``; optional ``frames`` + ``frame_ts``) through h5py.

Chunks are read as slices of the datasets, so a file of any size streams. ``ts`` may be integers (us
unless ``time_unit`` says otherwise) or floats: a float column records no unit, so without ``time_unit``
it is inferred from its values (:func:`~anonreid.events.io.time_units.float_column_time_unit`: whole
microseconds in the unit, e.g. seconds as E2VID's tools write them) with a ``TimeUnitWarning``, and a
unit (given or inferred) under which the events would come faster than any sensor reads out is an
error naming ``--time-unit``. ``ps`` may be 0/1, -1/+1 or bool. The sensor comes from the root attributes
``width``/``height`` (or ``sensor_resolution`` = (height, width), the E2VID convention) unless given.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from anonreid.events.io.base import EventReader, time_scale_to_us
from anonreid.events.io.time_units import FLOAT_UNIT_SAMPLE, float_column_time_unit
from anonreid.events.types import SensorSize, validate_events

__all__ = ["Hdf5Reader", "write_hdf5"]

_COLUMNS = ("ts", "xs", "ys", "ps")
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

    def _chunks(self) -> Iterator[np.ndarray]:
        with self._open() as f:
            g = f[self.group]
            for start in range(0, self.num_events, self.chunk_events):
                stop = min(start + self.chunk_events, self.num_events)
                try:
                    t, x, y, p = (g[name][start:stop] for name in _COLUMNS)
                except _H5_ERRORS as exc:
                    raise self.error(f"corrupt data ({exc})", f"{self.group}/*[{start}:{stop}]") from None
                yield self.columns_to_events(t, x, y, p, start, self.time_scale)

    def frames(self) -> tuple[np.ndarray, np.ndarray] | None:
        """``(frames (N, H, W), frame_ts (N,) us)`` when the file has them, else None (loads them)."""
        with self._open() as f:
            if "frames" not in f:
                return None
            try:
                frames = f["frames"][()]
                ts = f["frame_ts"][()] if "frame_ts" in f else np.arange(len(frames), dtype=np.int64)
            except _H5_ERRORS as exc:
                raise self.error(f"corrupt frames ({exc})", "frames") from None
        if len(ts) != len(frames):
            raise self.error(f"{len(frames)} frames but {len(ts)} frame_ts")
        return frames, ts.astype(np.int64)


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
