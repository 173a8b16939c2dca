"""Every event file reader, fuzzed with files that are well-formed containers holding bad content.

Random bytes rarely get past a container's checks (tests/test_events_io.py fuzzes those); here each
reader gets its own container, written by the real writer (numpy, h5py) or by the format's layout,
holding columns of any dtype (strings, complex, dates, records, 2-d), out-of-range and non-finite
values, odd sensor attributes, unknown words. Whatever a file holds, the reader returns a valid event
array, or raises :class:`EventFormatError` naming the file: any other exception fails the test, and so
does a numpy RuntimeWarning (an overflowing or invalid cast is how a value gets silently corrupted).
Where the file's content is known (npz, HDF5), an accepted file must also read back exactly what was
written (no silent wrap-around of a timestamp). 300 cases per reader, small files (seconds each).
"""

from __future__ import annotations

import math
import re
import struct
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from event_file_encoders import encode_aedat4
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anonreid.events import EventFormatError, SensorSize, make_events, validate_events
from anonreid.events.io import read_events

pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")  # a silent numpy cast (overflow, NaN) fails too
FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
SENSOR = SensorSize(64, 48)

NUMERIC = ["i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8", "?"]
OTHER = ["U3", "S3", "c8", "M8[us]", "m8[us]", "V3", "O", "i2,i2"]
EDGE = [0, 1, -1, 2, 3, 47, 63, 64, 65535, 65536, 2**31, 2**53 + 1, 2**63 - 1, -(2**63), 2**64 - 1,
        0.5, 1.5, -0.0, 1e19, -1e19, 1e300, float("nan"), float("inf"), float("-inf")]


def read_checked(path: Path, **kw: Any) -> np.ndarray | None:
    """The file's events (validated), or None after an EventFormatError that names the file."""
    try:
        ev = read_events(path, chunk_events=4, **kw)
    except EventFormatError as exc:
        assert str(path) in str(exc), exc
        return None
    validate_events(ev, kw.get("sensor"))
    return ev


@st.composite
def columns(draw: st.DrawFn, n: int, dtypes: list[str]) -> np.ndarray:
    """A column of ``n`` values (sometimes another length, or 2-d) of one of ``dtypes``."""
    dt = np.dtype(draw(st.sampled_from(dtypes)))
    size = draw(st.sampled_from([n] * 6 + [n + 1, max(n - 1, 0)]))
    if dt.hasobject:
        col = np.array([draw(st.sampled_from([1, "1", None, 1.5]))] * size, dtype=object)
    elif dt.kind == "V" or draw(st.booleans()):  # raw bytes reinterpreted: any bit pattern of the dtype
        data = draw(st.binary(min_size=dt.itemsize * size, max_size=dt.itemsize * size))
        col = np.frombuffer(data, dtype=dt).copy()
    else:
        values = draw(st.lists(st.sampled_from(EDGE), min_size=size, max_size=size))
        ints = [int(v) if math.isfinite(v) else 0 for v in values]
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            if dt.kind in "iu":
                lo, hi = np.iinfo(dt).min, np.iinfo(dt).max
                col = np.array([min(max(v, lo), hi) for v in ints], dtype=dt)
            elif dt.kind in "Mm":
                col = np.array([min(max(v, -(2**63) + 1), 2**63 - 1) for v in ints], dtype=np.int64).astype(dt)
            else:  # float, complex, bool, strings
                col = np.array(values, dtype=np.float64).astype(dt)
    if draw(st.integers(0, 9)) == 0:
        col = np.stack([col, col], axis=1)
    return col


def _expected(cols: dict[str, np.ndarray]) -> dict[str, list[int]] | None:
    """What a reader must return for numeric 1-d columns it accepts (None: no exact expectation)."""
    if any(c.dtype.kind not in "iub" for c in cols.values()) or any(c.ndim != 1 for c in cols.values()):
        return None
    out = {k: [int(v) for v in c] for k, c in cols.items()}
    if out["p"] and min(out["p"]) >= 0 and max(out["p"]) <= 1:
        out["p"] = [1 if v > 0 else -1 for v in out["p"]]
    return out


def _check_exact(ev: np.ndarray | None, cols: dict[str, np.ndarray]) -> None:
    want = _expected(cols)
    if ev is not None and want is not None:
        assert {k: ev[k].tolist() for k in "txyp"} == want


# ---------------------------------------------------------------- npz

@FUZZ
@given(n=st.integers(0, 6), data=st.data(), layout=st.sampled_from(["columns", "aliases", "events"]),
       sensor=st.one_of(st.none(), st.lists(st.sampled_from(EDGE), max_size=3)), compress=st.booleans())
def test_npz_reader_raises_event_format_error_only(tmp_path: Path, n: int, data: Any, layout: str,
                                                    sensor: list[Any] | None, compress: bool) -> None:
    cols = {k: data.draw(columns(n, NUMERIC * 3 + OTHER), label=k) for k in "txyp"}
    names = {"t": "ts", "x": "xs", "y": "ys", "p": "ps"} if layout == "aliases" else {k: k for k in "txyp"}
    members: dict[str, np.ndarray] = {names[k]: v for k, v in cols.items()}
    if layout == "events":
        length = min(len(c) for c in cols.values())
        try:
            rec = np.empty(length, dtype=[(k, c.dtype, c.shape[1:]) for k, c in cols.items()])
        except (TypeError, ValueError):
            return
        for k, c in cols.items():
            rec[k] = c[:length]
        members = {"events": rec}
    if sensor is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            members["sensor"] = np.array(sensor)
    path = tmp_path / "f.npz"
    (np.savez_compressed if compress else np.savez)(path, **members)  # type: ignore[operator]
    ev = read_checked(path)
    if layout != "events" and sensor is None:
        _check_exact(ev, cols)


# ---------------------------------------------------------------- HDF5

H5_DTYPES = NUMERIC * 2 + ["S3", "c8", "i2,i2", "vlen-str"]


@FUZZ
@given(n=st.integers(0, 6), data=st.data(), attrs=st.dictionaries(
    st.sampled_from(["width", "height", "sensor_resolution"]),
    st.one_of(st.sampled_from(EDGE), st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=3),
              st.lists(st.sampled_from(EDGE), max_size=3))))
def test_hdf5_reader_raises_event_format_error_only(tmp_path: Path, n: int, data: Any,
                                                     attrs: dict[str, Any]) -> None:
    import h5py

    cols = {}
    path = tmp_path / "f.h5"
    with h5py.File(path, "w") as f:
        for key, name in zip("txyp", ("ts", "xs", "ys", "ps"), strict=True):
            kind = data.draw(st.sampled_from(H5_DTYPES), label=f"{name} dtype")
            if kind == "vlen-str":
                f.create_dataset(f"events/{name}", data=["1"] * n, dtype=h5py.string_dtype())
                continue
            col = data.draw(columns(n, [kind]), label=name)
            f.create_dataset(f"events/{name}", data=col)
            cols[key] = col
        for key, value in attrs.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                f.attrs[key] = np.array(value) if isinstance(value, list) else value
    ev = read_checked(path)
    if len(cols) == 4 and not attrs:
        _check_exact(ev, cols)


# ---------------------------------------------------------------- plain text (and Event-ReId events.txt)

TOKENS = ["0", "1", "-1", "2", "47", "63", "64", "65535", "65536", "1e9", "1e400", "-1e400", "nan", "inf", "-0",
          "0.5", "1.0", "9" * 30, "0x10", "+1", "\uff11", "\x00", "\u00e9", "1_0", "", "#"]


@FUZZ
@given(header=st.sampled_from(["", "64 48\n", "0 0\n", "-5 3\n", "99999999999999999999 3\n", "a b\n", "64 48 1\n"]),
       rows=st.lists(st.lists(st.sampled_from(TOKENS), min_size=1, max_size=6), max_size=8),
       sep=st.sampled_from([" ", ",", "\t", "  "]), suffix=st.sampled_from(["txt", "csv"]),
       unit=st.sampled_from(["us", "s", "ns"]))
def test_text_reader_raises_event_format_error_only(tmp_path: Path, header: str, rows: list[list[str]], sep: str,
                                                     suffix: str, unit: str) -> None:
    path = tmp_path / f"events.{suffix}"
    path.write_bytes((header + "".join(sep.join(r) + "\n" for r in rows)).encode("utf-8", "surrogatepass"))
    read_checked(path, time_unit=unit)


# ---------------------------------------------------------------- Prophesee EVT 2.0 / EVT 3.0 / DAT

@FUZZ
@given(version=st.sampled_from(["2", "3"]), geometry=st.sampled_from(["64x48", "0x0", "x", "99999x1", ""]),
       words=st.lists(st.tuples(st.integers(0, 15), st.integers(0, 2**28 - 1)), max_size=40),
       tail=st.binary(max_size=3))
def test_raw_reader_raises_event_format_error_only(tmp_path: Path, version: str, geometry: str,
                                                    words: list[tuple[int, int]], tail: bytes) -> None:
    header = f"% evt {version}.0\n" + (f"% geometry {geometry}\n" if geometry else "") + "% end\n"
    if version == "2":
        body = b"".join(struct.pack("<I", (kind << 28) | payload) for kind, payload in words)
    else:
        body = b"".join(struct.pack("<H", (kind << 12) | (payload & 0xFFF)) for kind, payload in words)
    path = tmp_path / "f.raw"
    path.write_bytes(header.encode() + body + tail)
    read_checked(path)


@FUZZ
@given(height=st.sampled_from(["48", "0", "-1", "x", ""]), kind=st.integers(0, 255), size=st.integers(0, 255),
       records=st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)), max_size=20),
       tail=st.binary(max_size=7))
def test_dat_reader_raises_event_format_error_only(tmp_path: Path, height: str, kind: int, size: int,
                                                    records: list[tuple[int, int]], tail: bytes) -> None:
    header = (f"% Height {height}\n% Width 64\n" if height else "") + "% end\n"
    body = b"".join(struct.pack("<II", t, w) for t, w in sorted(records))
    path = tmp_path / "f.dat"
    path.write_bytes(header.encode() + bytes([kind, size]) + body + tail)
    read_checked(path)


# ---------------------------------------------------------------- AEDAT4

@FUZZ
@given(n=st.integers(0, 12), packet=st.integers(1, 6), width=st.sampled_from([64, 0, 1, 70000]),
       flips=st.lists(st.tuples(st.integers(0, 2_000), st.integers(0, 255)), max_size=4), cut=st.integers(0, 40),
       coords=st.lists(st.tuples(st.integers(-5, 80), st.integers(-5, 60)), min_size=12, max_size=12),
       seed=st.integers(0, 3))
def test_aedat4_reader_raises_event_format_error_only(tmp_path: Path, n: int, packet: int, width: int,
                                                       flips: list[tuple[int, int]], cut: int,
                                                       coords: list[tuple[int, int]], seed: int) -> None:
    rng = np.random.default_rng(seed)
    ev = make_events(np.sort(rng.integers(0, 10**6, n)), np.zeros(n), np.zeros(n), rng.choice([-1, 1], n))
    ev = ev.astype([("t", "<i8"), ("x", "<i4"), ("y", "<i4"), ("p", "i1")])
    ev["x"], ev["y"] = np.array(coords[:n]).T.reshape(2, n)  # possibly off the sensor or negative
    buf = bytearray(encode_aedat4(ev, width, 48, packet_events=packet))
    for pos, value in flips:
        buf[pos % len(buf)] = value
    path = tmp_path / "f.aedat4"
    path.write_bytes(bytes(buf[: max(1, len(buf) - cut)]))
    read_checked(path)


@pytest.mark.parametrize("dtype", ["U2", "S2", "c8", "M8[us]", "V2"])
@pytest.mark.parametrize("field", ["t", "x", "y", "p"])
def test_npz_column_of_a_non_numeric_dtype_names_the_field(tmp_path: Path, dtype: str, field: str) -> None:
    cols = {k: np.array([1, 2]) for k in "txyp"}
    cols["p"] = np.array([1, -1])
    cols[field] = np.zeros(2, dtype=dtype)
    np.savez(tmp_path / "f.npz", **cols)  # type: ignore[arg-type]
    with pytest.raises(EventFormatError, match=rf"f\.npz.*'{field}'.*{re.escape(str(np.dtype(dtype)))}"):
        read_events(tmp_path / "f.npz")


def test_timestamps_past_int64_are_refused_not_wrapped(tmp_path: Path) -> None:
    for t in (np.array([1.0, 1e300]), np.array([1, 2**64 - 1], dtype=np.uint64), np.array([1.0, 9.3e18])):
        np.savez(tmp_path / "t.npz", t=t, x=[1, 1], y=[1, 1], p=[1, 1])
        with pytest.raises(EventFormatError, match=r"t\.npz.*element 1.*t="):
            read_events(tmp_path / "t.npz")
