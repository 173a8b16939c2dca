"""World datasets: round trip through world.json + world.h5, determinism, the CLI and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from anonreid.events.types import EventFormatError, validate_events
from anonreid.events.world.dataset import WorldDataset, simulate_dataset
from anonreid.orchestration.config import WorldConfig

CFG = WorldConfig(identities=3, train_identities=2, resolution="96x72", pass_seconds=0.5)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return simulate_dataset(tmp_path_factory.mktemp("world") / "a", CFG, progress=False)


def test_round_trip(dataset: Path) -> None:
    ds = WorldDataset(dataset)
    assert ds.sensor.width == 96 and ds.sensor.height == 72
    assert ds.identities("train") == ["001", "002"] and ds.identities("test") == ["003"]
    assert {(p.identity, p.camera) for p in ds.passes} == {(i, c) for i in ("001", "002", "003")
                                                          for c in ("cam1", "cam2", "cam3", "cam4")}
    for info in ds.passes:
        d = ds.load_pass(info.pass_id)
        n = info.num_windows
        assert n == 15 and d.frames.shape == (n, 72, 96) and d.frames.dtype == np.uint8
        assert d.frame_ts.tolist() == [k * 33_333 for k in range(n)]
        assert d.boxes.shape == (n, 4) and d.boxes.dtype == np.float32
        validate_events(d.events, ds.sensor)
        assert len(d.events) > 100 and d.events["t"].max() < n * 33_333
        vis = ~np.isnan(d.boxes).any(axis=1)
        assert vis.sum() >= n // 2  # the person is centred on the lane halfway through the pass
        b = d.boxes[vis]
        assert ((b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])).all()
        assert d.frames.std() > 5
        assert d.identity == info.identity and d.camera == info.camera
    photo = ds.enrollment("002")
    assert photo.shape == (256, 128) and photo.dtype == np.uint8
    other_day = ds.enrollment("002", day=1)  # rendered from world.json: another outfit, the same person
    assert other_day.shape == photo.shape and np.abs(other_day.astype(int) - photo).mean() > 1
    assert np.array_equal(other_day, ds.enrollment("002", day=1)) and not np.array_equal(other_day, ds.enrollment("002", 2))
    with pytest.raises(KeyError, match=r"world\.json.*'009'"):
        ds.enrollment("009", day=1)
    del next(p for p in ds.meta["identities"] if p["identity"] == "002")["long_sleeves"]  # an older world.json
    with pytest.raises(ValueError, match=r"world\.json: identity '002' lacks attributes.*long_sleeves"):
        ds.enrollment("002", day=1)
    meta = json.loads((dataset / "world.json").read_text())
    assert meta["config"]["seed"] == 0 and len(meta["identities"]) == 3 and len(meta["cameras"]) == 4


def test_same_seed_gives_byte_identical_dataset(dataset: Path, tmp_path: Path) -> None:
    # a second run, in two worker processes, writes the same bytes
    again = simulate_dataset(tmp_path / "b", CFG.model_copy(update={"workers": 2}), progress=False)
    for name in ("world.json", "world.h5"):
        assert (again / name).read_bytes() == (dataset / name).read_bytes(), name
    other = simulate_dataset(tmp_path / "c", CFG.model_copy(update={"seed": 1, "identities": 3}), progress=False)
    assert (other / "world.h5").read_bytes() != (dataset / "world.h5").read_bytes()


def test_reader_errors_name_the_file_and_field(dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"world\.json"):
        WorldDataset(tmp_path / "nowhere")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "world.h5").write_bytes((dataset / "world.h5").read_bytes())
    meta = json.loads((dataset / "world.json").read_text())
    del meta["passes"]
    (bad / "world.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"world.json: missing field 'passes'"):
        WorldDataset(bad)
    meta = json.loads((dataset / "world.json").read_text())
    meta["passes"][0]["num_windows"] = 99
    (bad / "world.json").write_text(json.dumps(meta))
    with pytest.raises(EventFormatError, match=r"frames has shape"):
        WorldDataset(bad).load_pass(meta["passes"][0]["pass_id"])
    with pytest.raises(KeyError, match="no pass"):
        WorldDataset(dataset).load_pass("nope")


def test_simulate_cli_writes_dataset_and_previews(tmp_path: Path) -> None:
    from anonreid.orchestration.cli import app

    out = tmp_path / "cli"
    res = CliRunner().invoke(app, ["simulate", "--out", str(out), "--identities", "2", "--seconds", "0.3",
                                   "--resolution", "96x72", "--seed", "3", "--preview", "--export", "event-reid"])
    assert res.exit_code == 0, res.output
    ds = WorldDataset(out)
    assert ds.identities() == ["001", "002"] and ds.identities("train") == ["001"]
    for name in ("reference_frames.png", "event_frames.png", "enrollment.png"):
        assert (out / "preview" / name).stat().st_size > 500
    assert (out / "event-reid" / "002" / "cam04" / "events.txt").read_text().startswith("96 72\n")
    res = CliRunner().invoke(app, ["simulate", "--out", str(out), "--resolution", "12x9x"])
    assert res.exit_code == 2 and "resolution" in res.output


def test_export_event_reid_round_trip(dataset: Path, tmp_path: Path) -> None:
    from anonreid.events.io.event_reid import open_event_reid, read_labels
    from anonreid.events.world.export import export_event_reid

    dest = export_event_reid(dataset, tmp_path / "ereid")
    ds = WorldDataset(dataset)
    assert (dest / "test_ids.txt").read_text() == "003\n"
    data = ds.load_pass("002_cam3_0")
    reader = open_event_reid(dest / "002" / "cam03" / "events.txt")
    back = np.concatenate(list(reader))
    assert reader.sensor == ds.sensor
    assert np.array_equal(back, data.events)
    labels = sorted((dest / "002" / "cam03" / "labels").glob("*.json"))
    visible = np.flatnonzero(~np.isnan(data.boxes).any(axis=1))
    assert len(labels) == len(visible)
    first = read_labels(labels[0])[0]
    assert first.frame == visible[0]
    assert np.allclose(first.box, data.boxes[visible[0]], atol=1e-3)


def test_a_world_from_first_identity_holds_the_same_people_and_passes(dataset: Path, tmp_path: Path) -> None:
    # people 003.. of a world that starts at 3 are the 3-identity world's person 003 (same events), and
    # the protocol tells them apart from 001-002 as people, so such a world trains on unseen persons
    later = simulate_dataset(tmp_path / "later", CFG.model_copy(update={"first_identity": 3, "identities": 2,
                                                                      "train_identities": 1}), progress=False)
    ds, base = WorldDataset(later), WorldDataset(dataset)
    assert ds.identities("train") == ["003"] and ds.identities("test") == ["004"]
    for cam in ("cam1", "cam3"):
        a, b = ds.load_pass(f"003_{cam}_0"), base.load_pass(f"003_{cam}_0")
        assert np.array_equal(a.events, b.events) and np.array_equal(a.frames, b.frames)
    from anonreid.models.evaluation.protocol import person_keys

    assert person_keys(later, ["003"]) == person_keys(dataset, ["003"])
    assert person_keys(later, ["003"])["003"] not in person_keys(dataset, ["001", "002"]).values()
    with pytest.raises(ValueError, match="first_identity"):
        WorldConfig(identities=3, train_identities=2, first_identity=9999)
    from anonreid.orchestration.cli import app

    result = CliRunner().invoke(app, ["simulate", "--out", str(tmp_path / "bad"), "--first-identity", "0"])
    assert result.exit_code == 2 and "world.first_identity" in result.output, result.output
    assert not (tmp_path / "bad").exists()
