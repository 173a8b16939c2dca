"""Event-ReId chunk files through their list files: open_event_reid_list on real files in tmp_path."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from anonreid.events import EventFormatError, SensorSize, make_events
from anonreid.events.io import (
    ChunkGapWarning,
    open_event_reid_list,
    write_event_reid_chunks,
)

SENSOR = SensorSize(640, 480)
WINDOW = 33_333


def recording(seed: int, t_start: int, windows: int, per_window: int = 60) -> np.ndarray:
    """Random sorted events covering ``windows`` chunk windows from ``t_start`` (us)."""
    rng = np.random.default_rng(seed)
    n = windows * per_window
    t = np.sort(rng.integers(t_start, t_start + windows * WINDOW, n))
    return make_events(t, rng.integers(0, 640, n), rng.integers(0, 480, n), rng.choice([-1, 1], n))


def write_list(path, lines):
    path.write_text("".join(f"{rel} {ident}\n" for rel, ident in lines))
    return path


@pytest.mark.parametrize(("unit", "clock"), [("s", "continuous"), ("ms", "restart"), ("ns", "continuous")])
def test_round_trip_groups_orders_and_infers_unit(tmp_path, unit, clock):
    seqs = {("007", 2): recording(0, 5 * WINDOW + 17, 6), ("007", 1): recording(1, 0, 3), ("012", 3): recording(2, 40 * WINDOW, 4)}
    lines = []
    for (ident, cam), ev in seqs.items():
        rels = write_event_reid_chunks(tmp_path, ident, cam, ev, WINDOW, time_unit=unit, clock=clock)
        lines += [(rel, str(int(ident))) for rel in rels]
    lines.reverse()  # the list's order does not matter: chunks are ordered by NNN
    lst = write_list(tmp_path / "train.txt", lines)
    got = open_event_reid_list(lst, sensor=SENSOR, chunk_events=50)
    assert [(s.identity, s.camera, s.label) for s in got] == [("007", 1, "7"), ("007", 2, "7"), ("012", 3, "12")]
    assert all(s.time_unit == unit and s.clock == clock for s in got)
    assert [e.name.index for e in got[1].chunks] == list(range(5, 11))
    for seq in got:
        chunks = list(seq)
        assert all(len(c) <= 50 for c in chunks)
        assert np.array_equal(np.concatenate(chunks), seqs[(seq.identity, seq.camera)])
    # the unit and the clock can be given instead of inferred
    again = open_event_reid_list(lst, time_unit=unit, clock=clock)
    assert np.array_equal(again[2].read_all(), seqs[("012", 3)])


def test_restarting_clock_is_detected_and_offset_by_chunk_index(tmp_path):
    ev = recording(3, 2 * WINDOW, 5)
    rels = write_event_reid_chunks(tmp_path, "004", 1, ev, WINDOW, time_unit="s", clock="restart")
    first = (tmp_path / rels[1]).read_text().split()[0]
    assert float(first) < WINDOW / 1e6  # the file's clock starts again from 0
    lst = write_list(tmp_path / "l.txt", [(r, "4") for r in rels])
    (seq,) = open_event_reid_list(lst)
    assert seq.clock == "restart"
    assert np.array_equal(seq.read_all(), ev)
    # read as one continuous clock the second file starts before the first ends: an error naming both
    (cont,) = open_event_reid_list(lst, clock="continuous")
    with pytest.raises(EventFormatError, match=r"004_c1_003\.txt, line 1: starts at .*004_c1_002\.txt.*clock='restart'"):
        cont.read_all()


def test_root_differs_from_list_folder(tmp_path):
    ev = recording(4, 0, 2)
    rels = write_event_reid_chunks(tmp_path / "data", "001", 1, ev, WINDOW, time_unit="ms")
    (tmp_path / "lists").mkdir()
    lst = write_list(tmp_path / "lists" / "test.txt", [(r, "1") for r in rels])
    with pytest.raises(EventFormatError, match=r"test\.txt, line 1: 001/001_c1_000\.txt: no such file"):
        open_event_reid_list(lst)
    (seq,) = open_event_reid_list(lst, root=tmp_path / "data")
    assert np.array_equal(seq.read_all(), ev)


def test_list_errors_name_the_list_file_and_line(tmp_path):
    rels = write_event_reid_chunks(tmp_path, "009", 2, recording(5, 0, 3), WINDOW)
    (tmp_path / "009" / "events.txt").write_text("640 480\n")
    cases = {
        "missing": ([(rels[0], "9"), ("009/009_c2_007.txt", "9")], r"line 2: 009/009_c2_007\.txt: no such file"),
        "not a chunk": ([(rels[0], "9"), ("009/events.txt", "9")], r"line 2: 009/events\.txt is not a chunk file"),
        "duplicate": ([(rels[0], "9"), (rels[1], "9"), (rels[1], "9")], r"line 3: chunk 1 of 009 camera 2 is listed twice \(also on line 2\)"),
        "two ids": ([(rels[0], "9"), (rels[1], "10")], r"line 2: .* has id '10' but line 1 gave 009 camera 2 id '9'"),
    }
    for name, (lines, pattern) in cases.items():
        lst = write_list(tmp_path / f"{name.replace(' ', '_')}.txt", lines)
        with pytest.raises(EventFormatError, match=pattern):
            open_event_reid_list(lst)
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(EventFormatError, match="names no chunk file"):
        open_event_reid_list(tmp_path / "empty.txt")
    (tmp_path / "bad.txt").write_text(f"{rels[0]}\n")
    with pytest.raises(EventFormatError, match=r"bad\.txt, line 1: expected '<relative path> <id>'"):
        open_event_reid_list(tmp_path / "bad.txt")


def test_gap_in_chunk_numbers_warns_or_raises(tmp_path):
    ev = recording(6, 0, 5)
    rels = write_event_reid_chunks(tmp_path, "003", 4, ev, WINDOW)
    lst = write_list(tmp_path / "gap.txt", [(r, "3") for i, r in enumerate(rels) if i not in (2, 3)])
    with pytest.warns(ChunkGapWarning, match=r"gap\.txt: chunks 2\.\.3 of 003 camera 4 are missing \(between lines 2 and 3\)"):
        (seq,) = open_event_reid_list(lst)
    kept = ev[(ev["t"] < 2 * WINDOW) | (ev["t"] >= 4 * WINDOW)]
    assert np.array_equal(seq.read_all(), kept)  # the gap stays a gap in time
    with pytest.raises(EventFormatError, match=r"gap\.txt, line 3: chunks 2\.\.3 of 003 camera 4 are missing"):
        open_event_reid_list(lst, gaps="error")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        open_event_reid_list(write_list(tmp_path / "full.txt", [(r, "3") for r in rels]), time_unit="s")  # no gap: no warning


def test_bad_chunk_content_and_uninferable_unit(tmp_path):
    rels = write_event_reid_chunks(tmp_path, "005", 1, recording(7, 0, 2), WINDOW)
    lst = write_list(tmp_path / "l.txt", [(r, "5") for r in rels])
    bad_line = len((tmp_path / rels[1]).read_text().splitlines()) + 1
    with open(tmp_path / rels[1], "a") as f:
        f.write("0.1 700 12 1\n")  # x outside the 640x480 sensor
    (seq,) = open_event_reid_list(lst, sensor=SENSOR)
    with pytest.raises(EventFormatError, match=rf"005_c1_001\.txt, line {bad_line}: pixel \(700, 12\) outside"):
        seq.read_all()
    one = tmp_path / "one" / "006"
    one.mkdir(parents=True)
    (one / "006_c1_000.txt").write_text("0.5 1 2 1\n")  # a single event: span 0
    lst = write_list(tmp_path / "one" / "l.txt", [("006/006_c1_000.txt", "6")])
    with pytest.raises(EventFormatError, match=r"l\.txt: cannot infer the time unit.*pass time_unit="):
        open_event_reid_list(lst)
    (seq,) = open_event_reid_list(lst, time_unit="s")
    assert seq.read_all()["t"].tolist() == [500_000]
