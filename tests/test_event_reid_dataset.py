"""Event-ReId as the authors publish it, on a fixture the project writes itself: the world exported as
chunk files in ticks of 100 us with train/query/gallery lists (every 5th chunk, so the chunk numbers
have gaps) and as the full ``<ID>/camNN/events.txt`` layout; time units inferred (with a warning),
given, or refused when the spans contradict them."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from anonreid.events.event_reid_dataset import OFFICIAL_TEST_IDS, open_event_reid_dataset
from anonreid.events.io import (
    TIME_UNITS,
    TimeUnitWarning,
    open_event_reid_list,
    open_events,
    parse_chunk_name,
    read_list_file,
    time_scale_to_us,
    unit_name,
    write_event_reid_chunks,
)
from anonreid.events.types import EventFormatError, SensorSize, make_events
from anonreid.events.world.dataset import WorldDataset, simulate_dataset
from anonreid.events.world.export import export_event_reid, export_event_reid_chunks
from anonreid.orchestration.config import WorldConfig

CFG = WorldConfig(identities=4, train_identities=2, resolution="96x72", pass_seconds=0.6, seed=1)
SENSOR = SensorSize(96, 72)
WINDOW = 33_333


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return simulate_dataset(tmp_path_factory.mktemp("ereid") / "world", CFG, progress=False)


@pytest.fixture(scope="module")
def chunks(world: Path) -> Path:
    return export_event_reid_chunks(world, world.parent / "chunks")


def test_time_unit_names_scales_and_seconds_per_tick() -> None:
    assert [time_scale_to_us(u) for u in ("ns", "10ns", "100ns", "us", "µs", "10us", "100us", "ms", "100ms", "s")] == [
        1e-3, 1e-2, 1e-1, 1.0, 1.0, 10.0, 100.0, 1e3, 1e5, 1e6]
    assert time_scale_to_us("1e-4") == pytest.approx(100.0) and unit_name("1e-4") == "100us"  # seconds per tick
    assert time_scale_to_us("2.5us") == 2.5 and unit_name("2.5us") == "2.5e-06s"  # an explicit scale
    assert time_scale_to_us(100.0) == 100.0  # a number is the multiplier to us (the readers' API)
    for bad in ("", "fortnight", "us100", "0", "-1e-4"):
        with pytest.raises(ValueError, match="time unit"):
            time_scale_to_us(bad)


@pytest.mark.parametrize("unit", list(TIME_UNITS))
def test_every_power_of_ten_is_inferred_from_chunk_spans(tmp_path: Path, unit: str) -> None:
    rng = np.random.default_rng(0)
    n = 6 * 400
    t = np.sort(rng.integers(0, 6 * WINDOW, n))
    ev = make_events(t, rng.integers(0, 96, n), rng.integers(0, 72, n), rng.choice([-1, 1], n))
    rels = write_event_reid_chunks(tmp_path, "001", 1, ev, WINDOW, unit)
    (tmp_path / "l.txt").write_text("".join(f"{r} 1\n" for r in rels))
    with pytest.warns(TimeUnitWarning, match=rf"l\.txt: time unit not given; inferred {unit} from the spans"):
        (seq,) = open_event_reid_list(tmp_path / "l.txt")
    assert seq.time_unit == unit
    assert np.array_equal(seq.read_all()["t"] // 10, ev["t"] // 10)  # (10 ns ticks round the last digit)


def test_chunk_export_is_the_authors_layout(world: Path, chunks: Path) -> None:
    ds = WorldDataset(world)
    lists = {name: read_list_file(chunks / f"{name}_list.txt") for name in ("train", "query", "gallery")}
    assert {ident for _, ident in lists["train"]} == set(ds.identities("train"))
    assert {ident for _, ident in lists["query"] + lists["gallery"]} == set(ds.identities("test"))
    assert all(rel.startswith("train/") for rel, _ in lists["train"])
    test = [parse_chunk_name(rel) for rel, _ in lists["query"] + lists["gallery"]]
    assert all(rel.startswith("test/") for rel, _ in lists["query"] + lists["gallery"])
    assert all(c.index % 5 == 0 for c in test)  # every 5th chunk: the numbers of a sequence have gaps
    assert not set(lists["query"]) & set(lists["gallery"])
    assert len(lists["query"]) == len({(c.identity, c.camera) for c in test})  # one query per identity and camera
    first = (chunks / lists["gallery"][0][0]).read_text().split()
    assert 3.2e8 < float(first[0]) < 3.3e8 and first[3] in ("0", "1")  # ticks of 100 us on a running sensor clock


def test_chunk_layout_infers_100us_with_a_warning_and_honours_the_lists(chunks: Path) -> None:
    with pytest.warns(TimeUnitWarning, match=r"query_list\.txt: time unit not given; inferred 100us"):
        ds = open_event_reid_dataset(chunks, sensor=SENSOR)
    assert ds.layout == "lists" and ds.time_unit == "100us"
    roles = ds.roles()
    for role in ("query", "gallery"):
        listed = [f"{role}:{rel}" for rel, _ in read_list_file(chunks / f"{role}_list.txt")]
        assert sorted(p for p, r in roles.items() if r == role) == sorted(listed)
    data = ds.load_pass(next(p for p, r in roles.items() if r == "gallery"))
    span = int(data.events["t"][-1] - data.events["t"][0])
    assert 10_000 < span <= WINDOW and int(data.events["t"][0]) > 32e9  # one 33 ms window, in us
    assert data.boxes.shape == (1, 4) and data.frame_ts.tolist() == [int(data.events["t"][0])]
    x1, y1, x2, y2 = data.boxes[0]  # the box is the events' extent (the authors cleaned outside it)
    assert x1 == data.events["x"].min() and x2 == data.events["x"].max() + 1 and y2 > y1
    # the training list is its own split
    train = open_event_reid_dataset(chunks, "train", time_unit="100us", sensor=SENSOR)
    assert {r for r in train.roles().values()} == {"train"} and train.identities() == ["001", "002"]


def test_a_unit_the_spans_contradict_is_refused_naming_the_fix(chunks: Path) -> None:
    with pytest.raises(EventFormatError, match=r"read in ms, chunks span up to .* longer than a 33\.33 ms window: "
                                               r"the time unit is wrong; give the unit with --time-unit .*suggest 100us"):
        open_event_reid_dataset(chunks, time_unit="ms", sensor=SENSOR)
    with pytest.raises(EventFormatError, match=r"read in us, chunks span .* a small fraction of a 33\.33 ms window.*--time-unit"):
        open_event_reid_dataset(chunks, time_unit="us", sensor=SENSOR)
    with pytest.raises(ValueError, match=r"do not record their sensor size; give it \(--sensor WxH"):
        open_event_reid_dataset(chunks, time_unit="100us")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a given, plausible unit: no warning
        open_event_reid_dataset(chunks, time_unit="1e-4", sensor=SENSOR)


def test_a_single_chunk_file_opened_like_any_recording(chunks: Path) -> None:
    rel = read_list_file(chunks / "gallery_list.txt")[0][0]
    with pytest.warns(TimeUnitWarning, match=r"inferred 100us from its span"):
        ev = open_events(chunks / rel, sensor=SENSOR).read_all()
    assert 10_000 < int(ev["t"][-1] - ev["t"][0]) <= WINDOW
    with pytest.raises(EventFormatError, match=r"read in ms, .*--time-unit"):
        open_events(chunks / rel, sensor=SENSOR, time_unit="ms")


def test_full_layout_split_files_official_split_and_labelled_unit(world: Path, tmp_path: Path) -> None:
    root = export_event_reid(world, tmp_path / "full")
    ds = WorldDataset(world)
    with pytest.warns(TimeUnitWarning, match=r"events\.txt: time unit not given; inferred us .* labelled windows"):
        got = open_event_reid_dataset(root)
    assert got.layout == "full" and got.identities("test") == ds.identities("test")  # test_ids.txt
    assert got.sensor == SENSOR and got.time_unit == "us"
    with pytest.raises(EventFormatError, match=r"the recording spans .* labelled windows cover .*--time-unit"):
        open_event_reid_dataset(root, time_unit="10ns")
    (root / "test_ids.txt").unlink()
    assert "002" in OFFICIAL_TEST_IDS  # without split files: the authors' split
    assert open_event_reid_dataset(root, time_unit="us").identities() == ["002"]
    for ident in ("002",):
        shutil.rmtree(root / ident)
    with pytest.raises(FileNotFoundError, match=r"the official Event-ReId split .* found 001, 003, 004"):
        open_event_reid_dataset(root, time_unit="us")


def test_simulate_exports_the_chunk_layout(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from anonreid.orchestration.cli import app

    res = CliRunner().invoke(app, ["simulate", "--out", str(tmp_path / "w"), "--identities", "3", "--seconds", "0.4",
                                   "--resolution", "96x72", "--export", "event-reid-chunks"])
    assert res.exit_code == 0, res.output
    root = tmp_path / "w" / "event-reid-chunks"
    assert "sensor 96x72, time unit 100us" in res.output
    assert all((root / f"{name}_list.txt").stat().st_size > 0 for name in ("train", "query", "gallery"))
    res = CliRunner().invoke(app, ["simulate", "--out", str(tmp_path / "w"), "--export", "chunks"])
    assert res.exit_code == 2 and "event-reid-chunks" in res.output


def test_event_statistics_count_events_pixels_and_polarity_in_person_boxes() -> None:
    from anonreid.events.stats import EventStats, window_person_stats

    ev = make_events([1, 2, 3, 4, 5], [1, 1, 1, 2, 10], [1, 1, 1, 3, 10], [1, 1, -1, -1, 1])
    box = np.array([[0.0, 0.0, 4.0, 4.0]])
    assert window_person_stats(ev, box).tolist() == [[4, 2, 2, 16]]  # the 5th event is outside the box
    stats = EventStats().extend([(ev, box), (ev[:0], np.zeros((0, 4))), (ev, np.array([[np.nan] * 4]))])
    assert stats.summary() == {"events_per_person_window": 4.0, "events_per_active_pixel": 2.0, "on_share": 0.5,
                               "active_pixel_fraction": 2 / 16, "events_per_window": 10 / 3, "windows": 3,
                               "person_windows": 1}


def test_bench_event_stats_side_by_side(world: Path, chunks: Path, tmp_path: Path) -> None:
    """A chunk export (events already cleaned to the person: every event of a window is in its box), a
    recording with the detector's boxes, and the live world with its ground truth, in one table."""
    from typer.testing import CliRunner

    from anonreid.events.io import write_hdf5
    from anonreid.orchestration.cli import app

    ds = WorldDataset(world)
    h5 = tmp_path / "rec.h5"
    write_hdf5(h5, ds.load_pass(ds.passes[0].pass_id).events, ds.sensor)
    out = tmp_path / "stats.json"
    res = CliRunner().invoke(app, ["bench", "event-stats", str(chunks), str(h5), "--world", "--seconds", "1.5",
                                   "--sensor", "96x72", "--json", str(out)])
    assert res.exit_code == 0, res.output
    got = json.loads(out.read_text())["sources"]
    assert set(got) == {str(chunks), str(h5), "world"}
    c = got[str(chunks)]
    assert c["person_windows"] == c["windows"] > 0 and c["events_per_person_window"] == c["events_per_window"]
    for name, s in got.items():
        assert s["windows"] > 0 and 0 < s["on_share"] < 1 and 0 < s["active_pixel_fraction"] <= 1, name
        assert s["events_per_active_pixel"] >= 1, name
    assert got["world"]["people"] == "ground truth" and got["world"]["windows"] >= 4 * 45
    res = CliRunner().invoke(app, ["bench", "event-stats", str(chunks)])
    assert res.exit_code == 2 and "--sensor WxH" in res.output
    res = CliRunner().invoke(app, ["bench", "event-stats"])
    assert res.exit_code == 2 and "--world" in res.output
