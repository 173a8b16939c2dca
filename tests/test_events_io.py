"""Event file formats: round trips, cross-checks with the field's libraries, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from event_file_encoders import encode_aedat4, encode_evt3
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anonreid.events import EventFormatError, SensorSize, make_events
from anonreid.events.io import (
    TimeUnitWarning,
    chunk_span,
    detect_format,
    infer_time_unit,
    open_event_reid,
    open_event_reid_chunk,
    open_events,
    parse_chunk_name,
    read_events,
    read_labels,
    read_list_file,
    write_event_reid,
    write_hdf5,
    write_npz,
)

SENSOR = SensorSize(640, 480)


def random_events(n=2000, seed=0, t_max=40_000_000, sensor=SENSOR):
    rng = np.random.default_rng(seed)
    ev = make_events(np.sort(rng.integers(0, t_max, n)), rng.integers(0, sensor.width, n),
                     rng.integers(0, sensor.height, n), rng.choice([-1, 1], n))
    return ev[np.lexsort((ev["x"], ev["p"], ev["y"], ev["t"]))]  # canonical order within a timestamp


def expelliarmus_file(tmp_path, encoding, ev):
    from expelliarmus import Wizard

    arr = np.zeros(len(ev), dtype=[("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("p", "u1")])
    for k in "txy":
        arr[k] = ev[k]
    arr["p"] = ev["p"] > 0
    path = tmp_path / ("f.dat" if encoding == "dat" else f"f_{encoding}.raw")
    Wizard(encoding=encoding).save(path, arr)
    return path, arr


# ---------------------------------------------------------------- round trips and cross-checks

def test_hdf5_round_trip_streams_chunks_and_frames(tmp_path):
    ev = random_events()
    frames = np.random.default_rng(1).integers(0, 255, (3, 480, 640), dtype=np.uint8)
    path = write_hdf5(tmp_path / "a.h5", [ev[:700], ev[700:]], SENSOR, frames=frames, frame_ts_us=[0, 33_333, 66_666])
    reader = open_events(path, chunk_events=300)
    assert reader.sensor == SENSOR and detect_format(path) == "hdf5"
    chunks = list(reader)
    assert all(len(c) <= 300 for c in chunks)
    assert np.array_equal(np.concatenate(chunks), ev)
    got_frames, ts = reader.frames()
    assert np.array_equal(got_frames, frames) and ts.tolist() == [0, 33_333, 66_666]


def test_hdf5_time_range_reads_the_same_events_as_slicing_them_all(tmp_path):
    """`Hdf5Reader.read_time_range` (a training segment of a long recording) gives exactly the events of
    `read_all()` in [t_from, t_to): integer us, and float seconds rounded to the us like every read."""
    import h5py

    from anonreid.events.io.hdf5 import Hdf5Reader

    ev = random_events(n=3000, t_max=2_000_000)
    ev["t"][100:140] = ev["t"][100]  # a run of equal timestamps to land a bound on
    ev = ev[np.lexsort((ev["x"], ev["p"], ev["y"], ev["t"]))]
    int_path = write_hdf5(tmp_path / "us.h5", ev, SENSOR)
    float_path = tmp_path / "s.h5"
    with h5py.File(float_path, "w") as f:  # E2VID's tools: float seconds, polarity 0/1
        for name, col in (("ts", ev["t"] / 1e6), ("xs", ev["x"]), ("ys", ev["y"]), ("ps", ev["p"] > 0)):
            f.create_dataset(f"events/{name}", data=col)
    t = ev["t"]
    bounds = [(0, 0), (-5, 0), (-5, 10**9), (int(t[100]), int(t[100]) + 1), (int(t[100]) + 1, int(t[2000])),
              (int(t[-1]), int(t[-1]) + 1), (int(t[-1]) + 1, 10**9), (500_000, 400_000), (333_333, 366_666)]
    for path, unit in ((int_path, None), (float_path, "s")):
        reader = Hdf5Reader(path, SENSOR, time_unit=unit, chunk_events=500)
        everything = reader.read_all()
        assert np.array_equal(everything, ev)
        for t_from, t_to in bounds:
            want = everything[np.searchsorted(everything["t"], t_from) : np.searchsorted(everything["t"], max(t_from, t_to))]
            got = reader.read_time_range(t_from, t_to)
            assert np.array_equal(got, want), (path.name, t_from, t_to, len(got), len(want))


def test_event_reid_round_trip_with_labels(tmp_path):
    ev = random_events(500, t_max=66_000)  # the two labelled windows
    path = write_event_reid(tmp_path, "007", 2, ev, SENSOR, boxes=[((10, 20, 110, 300), 0), ((12, 21, 112, 301), 1)])
    assert path == tmp_path / "007" / "cam02" / "events.txt"
    assert path.read_text().splitlines()[0] == "640 480"
    reader = open_event_reid(path, chunk_events=128, time_unit="us")
    assert reader.sensor == SENSOR
    assert np.array_equal(reader.read_all(), ev)
    with pytest.warns(TimeUnitWarning, match=r"events\.txt: time unit not given; inferred us from its span .* 2 labelled"):
        assert np.array_equal(read_events(path), ev)  # dispatch by suffix + header sniffing; unit from the labels
    labels = sorted((path.parent / "labels").glob("*.json"))
    assert [read_labels(p)[0].frame for p in labels] == [0, 1]
    assert read_labels(labels[0])[0].box == (10.0, 20.0, 110.0, 300.0)


def test_event_reid_chunk_files_time_unit_and_lists(tmp_path):
    ev = random_events(300, t_max=33_000)
    chunk = tmp_path / "007_c2_015.txt"
    rows = [f"{t / 1e6:.6f} {x} {y} {int(p > 0)}" for t, x, y, p in ev]  # seconds as floats, no header
    chunk.write_text("\n".join(rows) + "\n")
    assert parse_chunk_name(chunk).camera == 2 and parse_chunk_name(chunk).index == 15
    assert infer_time_unit([chunk_span(chunk)]) == "s"
    assert infer_time_unit([0.0331, 0.0329], window_us=33_333) == "s"
    assert infer_time_unit([33.1, 32.0]) == "ms"
    got = open_event_reid_chunk(chunk, time_unit="s", sensor=SENSOR).read_all()
    assert np.array_equal(got, ev)
    lst = tmp_path / "train.txt"
    lst.write_text("007/007_c2_015.txt 7\n\n008/008_c1_001.txt 8\n")
    assert read_list_file(lst) == [("007/007_c2_015.txt", "7"), ("008/008_c1_001.txt", "8")]
    lst.write_text("only-one-field\n")
    with pytest.raises(EventFormatError, match="line 1"):
        read_list_file(lst)
    with pytest.raises(ValueError):
        parse_chunk_name("events.txt")


def test_npz_round_trip_streams(tmp_path):
    ev = random_events()
    path = write_npz(tmp_path / "a.npz", ev, SENSOR)
    reader = open_events(path, chunk_events=333)
    assert reader.sensor == SENSOR and np.array_equal(reader.read_all(), ev)
    np.savez(tmp_path / "s.npz", events=ev)  # a structured array member works too
    assert np.array_equal(read_events(tmp_path / "s.npz"), ev)


def test_plain_text_pm1_polarity(tmp_path):
    ev = random_events(50)
    path = tmp_path / "e.csv"
    path.write_text("# t x y p\n" + "\n".join(f"{t} {x} {y} {p}" for t, x, y, p in ev) + "\n")
    assert np.array_equal(read_events(path), ev)


@pytest.mark.parametrize("encoding", ["evt2", "dat"])
def test_prophesee_reader_matches_expelliarmus(tmp_path, encoding):
    from expelliarmus import Wizard

    ev = random_events(3000)
    path, _arr = expelliarmus_file(tmp_path, encoding, ev)
    theirs = Wizard(encoding=encoding, fpath=path).read()
    ours = open_events(path, sensor=SENSOR, chunk_events=500).read_all()
    for k in "txy":
        assert np.array_equal(ours[k], theirs[k].astype(np.int64))
    assert np.array_equal(ours["p"] > 0, theirs["p"] > 0)
    assert np.array_equal(ours, ev)


def test_evt3_spec_encoded_file_with_vectors_and_time_wrap(tmp_path):
    ev = random_events(3000, t_max=40_000_000)  # > 2^24 us: the 12-bit TIME_HIGH wraps twice
    rng = np.random.default_rng(2)
    run = make_events(np.full(25, 5_000_123), np.arange(40, 65), np.full(25, 7), np.ones(25))
    ev = np.sort(np.concatenate([ev, run]), order=["t", "y", "p", "x"])
    path = tmp_path / "e3.raw"
    path.write_bytes(encode_evt3(ev))
    reader = open_events(path, chunk_events=int(rng.integers(50, 500)))
    assert reader.sensor == SENSOR
    assert np.array_equal(reader.read_all(), ev)


def test_aedat4_spec_encoded_file(tmp_path):
    ev = random_events(1000)
    path = tmp_path / "e.aedat4"
    path.write_bytes(encode_aedat4(ev, 640, 480, packet_events=128))
    reader = open_events(path)
    assert reader.sensor == SENSOR and np.array_equal(reader.read_all(), ev)


# ---------------------------------------------------------------- bad input

def write_text(tmp_path, text, name="events.txt"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_text_errors_name_the_line(tmp_path):
    cases = {
        "640 480\n1 2 3 1\n2 2 3\n": "line 3",  # missing column
        "640 480\n1 2 3 1\n2 x 3 1\n": "line 3",  # garbage
        "640 480\n5 2 3 1\n4 2 3 1\n": "line 3",  # timestamps going backwards
        "640 480\n1 2 3 1\n2 700 3 1\n": "line 3",  # outside the sensor
        "640 480\n1 2 3 1\n2 2 3 5\n": "line 3",  # bad polarity
    }
    for text, where in cases.items():
        with pytest.raises(EventFormatError, match=where) as info:
            read_events(write_text(tmp_path, text))
        assert str(tmp_path / "events.txt") in str(info.value)
    with pytest.raises(EventFormatError, match="line 1"):
        open_event_reid(write_text(tmp_path, "1 2 3 1\n"))  # wrong header
    with pytest.raises(EventFormatError, match="header says"):
        open_events(write_text(tmp_path, "320 240\n1 2 3 1\n"), sensor=SENSOR)
    # an error in a later chunk still names the right line
    rows = "\n".join(f"{i} 1 1 1" for i in range(10)) + "\n3 1 1 1\n"
    with pytest.raises(EventFormatError, match="line 12"):
        read_events(write_text(tmp_path, "640 480\n" + rows), chunk_events=4)


def test_hdf5_errors(tmp_path):
    import h5py

    (tmp_path / "g.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"garbage" * 10)
    with pytest.raises(EventFormatError, match="not a readable HDF5"):
        open_events(tmp_path / "g.h5")
    with h5py.File(tmp_path / "m.h5", "w") as f:
        f.create_dataset("events/xs", data=[1])
    with pytest.raises(EventFormatError, match="missing dataset events/ts"):
        open_events(tmp_path / "m.h5")
    with h5py.File(tmp_path / "b.h5", "w") as f:
        for name, data in {"ts": [1, 5, 3], "xs": [1, 1, 1], "ys": [1, 1, 1], "ps": [1, 0, 1]}.items():
            f.create_dataset(f"events/{name}", data=data)
    with pytest.raises(EventFormatError, match=r"events/ts\[2\].*backwards|backwards.*events/ts\[2\]"):
        read_events(tmp_path / "b.h5")


def test_binary_truncated_and_bad_words(tmp_path):
    ev = random_events(200)
    path, _ = expelliarmus_file(tmp_path, "evt2", ev)
    data = path.read_bytes()
    (tmp_path / "t.raw").write_bytes(data[:-2])
    with pytest.raises(EventFormatError, match=r"byte \d+: truncated"):
        open_events(tmp_path / "t.raw")
    (tmp_path / "w.raw").write_bytes(data[:-4] + b"\x00\x00\x00\x30")  # word type 0x3: reserved
    with pytest.raises(EventFormatError, match=f"byte {len(data) - 4}: unknown EVT2 word type 0x3"):
        read_events(tmp_path / "w.raw")
    with pytest.raises(EventFormatError, match="outside"):
        read_events(path, sensor=SensorSize(10, 10))
    dat, _ = expelliarmus_file(tmp_path, "dat", ev)
    (tmp_path / "t.dat").write_bytes(dat.read_bytes()[:-3])
    with pytest.raises(EventFormatError, match="truncated"):
        open_events(tmp_path / "t.dat")
    (tmp_path / "n.raw").write_bytes(b"% no encoding here\n" + b"\0" * 8)
    with pytest.raises(EventFormatError, match="encoding"):
        open_events(tmp_path / "n.raw")
    back = ev.copy()
    back["t"][150] = back["t"][149] - 9000  # timestamps going backwards in EVT3 (TIME_HIGH decreases)
    (tmp_path / "b.raw").write_bytes(encode_evt3(back))
    with pytest.raises(EventFormatError, match=r"byte \d+: timestamps go backwards"):
        read_events(tmp_path / "b.raw")
    back["t"][150] = back["t"][149] - 1  # ... or only TIME_LOW decreases: caught on the event
    (tmp_path / "b.raw").write_bytes(encode_evt3(back))
    with pytest.raises(EventFormatError, match=r"byte \d+: timestamps go backwards"):
        read_events(tmp_path / "b.raw")


def test_aedat4_and_npz_garbage(tmp_path):
    good = encode_aedat4(random_events(300), 640, 480)
    (tmp_path / "t.aedat4").write_bytes(good[:-7])
    with pytest.raises(EventFormatError, match=r"t\.aedat4"):
        read_events(tmp_path / "t.aedat4")
    (tmp_path / "w.aedat4").write_bytes(b"#!AER-DAT3.1\r\n" + good[14:])
    with pytest.raises(EventFormatError, match="magic"):
        read_events(tmp_path / "w.aedat4")
    # sizes the decoder would allocate blindly (a huge one aborted the process before the checks)
    (tmp_path / "h.aedat4").write_bytes(good[:14] + b"\xf0\xff\xff\xff" + good[18:])
    with pytest.raises(EventFormatError, match="IO header"):
        read_events(tmp_path / "h.aedat4")
    header_len = int.from_bytes(good[14:18], "little")
    first_packet = 18 + header_len
    bad = bytearray(good)
    bad[first_packet + 4 : first_packet + 8] = b"\xf0\xff\xff\x7f"
    (tmp_path / "p.aedat4").write_bytes(bytes(bad))
    with pytest.raises(EventFormatError, match=f"byte {first_packet}: packet of"):
        read_events(tmp_path / "p.aedat4")
    bad = bytearray(good)
    bad[first_packet + 8 + 4 : first_packet + 8 + 8] = b"\x00\x00\x00\x70"  # flatbuffer root offset
    (tmp_path / "f.aedat4").write_bytes(bytes(bad))
    with pytest.raises(EventFormatError, match="flatbuffer"):
        read_events(tmp_path / "f.aedat4")
    (tmp_path / "z.npz").write_bytes(b"PK\x03\x04" + b"\0" * 50)
    with pytest.raises(EventFormatError, match="npz"):
        read_events(tmp_path / "z.npz")
    np.savez(tmp_path / "c.npz", t=[1, 2], x=[1], y=[1, 1], p=[1, 1])
    with pytest.raises(EventFormatError, match="different lengths"):
        read_events(tmp_path / "c.npz")
    with pytest.raises(EventFormatError, match=r"labels\.json"):
        read_labels(write_text(tmp_path, json.dumps([[1, 2, 3], 0]), "labels.json"))


# ---------------------------------------------------------------- property tests over random bytes

HEADERS = {
    "txt": [b"", b"640 480\n"],
    "raw": [b"% evt 2.0\n% geometry 640x480\n% end\n", b"% evt 3.0\n% format EVT3;height=480;width=640\n", b""],
    "dat": [b"% Height 480\n% Width 640\n\x00\x08", b""],
    "aedat4": [b"#!AER-DAT4.0\r\n", b""],
    "npz": [b"PK\x03\x04", b""],
    "h5": [b"\x89HDF\r\n\x1a\n", b""],
}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(suffix=st.sampled_from(sorted(HEADERS)), header=st.integers(0, 2), body=st.binary(max_size=300),
       text_body=st.lists(st.sampled_from([b"1 2 3 1\n", b"0 0 0 0\n", b"-1 5 5 1\n", b"9 1e9 2 0\n", b"x\n",
                                          b"3 2 1\n", b"\xff\xfe\n", b"\n", b"7 7 7 7 7\n"]), max_size=8))
def test_random_bytes_raise_event_format_error_only(tmp_path_factory, suffix, header, body, text_body):
    headers = HEADERS[suffix]
    data = headers[header % len(headers)] + (b"".join(text_body) if suffix == "txt" and header else body)
    path: Path = tmp_path_factory.mktemp("fuzz") / f"f.{suffix}"
    path.write_bytes(data)
    try:
        ev = read_events(path, chunk_events=16)
    except EventFormatError as exc:
        assert str(path) in str(exc)
        return
    assert ev.dtype.names == ("t", "x", "y", "p")  # accepted input must be a valid event array
    assert (np.diff(ev["t"]) >= 0).all() and set(np.unique(ev["p"]).tolist()) <= {-1, 1}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flip=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=6),
       cut=st.integers(0, 10_000), kind=st.sampled_from(["evt3", "aedat4", "evt2", "dat", "h5", "npz"]))
def test_corrupted_valid_files_raise_event_format_error_only(tmp_path_factory, flip, cut, kind):
    ev = random_events(150, seed=3)
    tmp = tmp_path_factory.mktemp("corrupt")
    if kind == "evt3":
        data, suffix = encode_evt3(ev), "raw"
    elif kind == "aedat4":
        data, suffix = encode_aedat4(ev, 640, 480, packet_events=40), "aedat4"
    elif kind == "h5":
        data, suffix = write_hdf5(tmp / "v.h5", ev, SENSOR).read_bytes(), "h5"
    elif kind == "npz":
        data, suffix = write_npz(tmp / "v.npz", ev, SENSOR).read_bytes(), "npz"
    else:
        path, _ = expelliarmus_file(tmp, kind, ev)
        data, suffix = path.read_bytes(), path.suffix[1:]
    buf = bytearray(data)
    for pos, value in flip:
        buf[pos % len(buf)] = value
    path = tmp / f"c.{suffix}"
    path.write_bytes(bytes(buf[: max(1, len(buf) - cut % 64)]))
    try:
        got = read_events(path, sensor=SENSOR, chunk_events=32)
    except EventFormatError as exc:
        assert str(path) in str(exc)
        return
    assert (np.diff(got["t"]) >= 0).all()
