"""Issue 18, item 1: float timestamps in HDF5 and ``.npz`` files are a unit like any other unknown one
(inferred with a warning, given, or refused; one helper, ``time_units.float_column_time_unit``), and
``anonreid train`` takes the shared ``--time-unit`` / ``--sensor``."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from anonreid.events.io import TimeUnitWarning, open_events, read_events
from anonreid.events.types import EventFormatError

US = np.sort(np.random.default_rng(0).integers(0, 2_000_000, 4000))  # 2 s of whole-microsecond times
FORMATS = ["h5", "npz"]


def write_float_times(path: Path, ts: np.ndarray) -> Path:
    """A 64x48 recording with timestamps ``ts`` and ones elsewhere: HDF5 ``events/{ts,xs,ys,ps}`` for
    ``.h5``, ``numpy.savez`` columns ``t, x, y, p`` + ``sensor`` for ``.npz``."""
    ones = np.ones(len(ts), np.uint16)
    if path.suffix == ".npz":
        np.savez(path, t=ts, x=ones, y=ones, p=ones.astype(np.int8), sensor=np.array([64, 48]))
        return path
    import h5py

    with h5py.File(path, "w") as f:
        f.attrs["width"], f.attrs["height"] = 64, 48
        f.create_dataset("events/ts", data=ts)
        for name, dt in (("xs", np.uint16), ("ys", np.uint16), ("ps", np.int8)):
            f.create_dataset(f"events/{name}", data=np.ones(len(ts), dt))
    return path


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(("unit", "per_us"), [("s", 1e-6), ("ms", 1e-3), ("us", 1.0), ("100ns", 10.0)])
def test_float_timestamps_infer_their_unit_with_a_warning(tmp_path: Path, unit: str, per_us: float, fmt: str) -> None:
    path = write_float_times(tmp_path / f"f.{fmt}", US * per_us)
    with pytest.warns(TimeUnitWarning, match=rf"f\.{fmt}: time unit not given; inferred {unit} from its float timestamps"):
        ev = read_events(path)
    assert ev["t"].tolist() == US.tolist()


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_given_unit_is_used_and_an_impossible_one_refused(tmp_path: Path, fmt: str) -> None:
    path = write_float_times(tmp_path / f"sec.{fmt}", US * 1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # given: no warning
        assert read_events(path, time_unit="s")["t"].tolist() == US.tolist()
        assert read_events(path, time_unit="1000ms")["t"].tolist() == US.tolist()  # a scaled unit
        assert open_events(path, time_unit="1").time_unit == "1"  # seconds per tick: the same unit
    # read as us, 4000 events would span 2 us: faster than any sensor reads out
    with pytest.raises(EventFormatError, match=rf"sec\.{fmt}: read in us, 4000 events span .*faster than any event "
                                               r"sensor reads out .*--time-unit .*suggest s\)"):
        open_events(path, time_unit="us")
    # continuous times (a simulator's, not a sensor's clock) are whole microseconds in no unit: refused, naming the fix
    rough = write_float_times(tmp_path / f"rough.{fmt}",
                              np.sort(US + np.random.default_rng(1).uniform(0.1, 0.9, len(US)) + 5e6) * 1e-6)
    with pytest.raises(EventFormatError, match=rf"rough\.{fmt}: float timestamps that are whole microseconds in no "
                                               r"unit.*--time-unit"):
        open_events(rough)
    assert read_events(rough, time_unit="s")["t"][-1] == pytest.approx(US[-1] + 5e6, abs=1)
    # float32 seconds are whole microseconds within their precision: inferred
    with pytest.warns(TimeUnitWarning, match="inferred s"):
        assert open_events(write_float_times(tmp_path / f"f32.{fmt}", (US * 1e-6 + 5).astype(np.float32))).time_unit == "s"


@pytest.mark.parametrize("fmt", FORMATS)
def test_integer_timestamps_stay_microseconds_without_a_warning(tmp_path: Path, fmt: str) -> None:
    path = write_float_times(tmp_path / f"i.{fmt}", US.astype(np.int64))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_events(path)["t"].tolist() == US.tolist()
        assert read_events(path, time_unit="ms")["t"].tolist() == (US * 1000).tolist()


def test_npz_float_timestamps_in_a_structured_events_member(tmp_path: Path) -> None:
    rec = np.zeros(len(US), dtype=[("t", np.float64), ("x", np.uint16), ("y", np.uint16), ("p", np.int8)])
    rec["t"], rec["x"], rec["y"], rec["p"] = US * 1e-3, 1, 1, 1
    np.savez(tmp_path / "rec.npz", events=rec, sensor=np.array([64, 48]))
    with pytest.warns(TimeUnitWarning, match=r"rec\.npz: time unit not given; inferred ms"):
        assert read_events(tmp_path / "rec.npz", chunk_events=1000)["t"].tolist() == US.tolist()


def test_npz_rate_check_sees_the_last_timestamp_of_a_long_compressed_column(tmp_path: Path) -> None:
    """More events than the inference sample: the span runs to the column's true last timestamp (read past
    the sample through the compressed member), not to the sample's last one."""
    from anonreid.events.io.time_units import FLOAT_UNIT_SAMPLE

    n = FLOAT_UNIT_SAMPLE + 5000
    ts = np.concatenate([np.arange(FLOAT_UNIT_SAMPLE) * 1e-4, 10.0 + np.arange(1, 5001) * 200.0])
    ones = np.ones(n, np.uint16)
    np.savez_compressed(tmp_path / "long.npz", t=ts, x=ones, y=ones, p=ones, sensor=np.array([64, 48]))
    # in us the sample alone spans 10 us (1e10 events/s, which is refused); the whole column 1 s
    events = open_events(tmp_path / "long.npz", time_unit="us", chunk_events=4096).read_all()
    assert len(events) == n and events["t"][-1] == 1_000_010


def test_a_replayed_float_npz_takes_the_camera_s_time_unit(tmp_path: Path) -> None:
    """The file-replay source (``camera run --source FILE --time-unit``) hands the unit to the reader."""
    from anonreid.events.types import concat_events
    from anonreid.nodes.sources import SourceSpec, open_source

    path = write_float_times(tmp_path / "sec.npz", US * 1e-6)
    spec = SourceSpec(kind="file", camera_id="cam1", path=str(path), realtime=False, time_unit="s")
    with warnings.catch_warnings():
        warnings.simplefilter("error", TimeUnitWarning)
        assert concat_events(list(open_source(spec).packets()))["t"].tolist() == US.tolist()


def test_every_command_that_reads_event_files_has_the_same_options() -> None:
    """One definition (orchestration.cli_common) on train, evaluate, camera run and bench event-stats."""
    import typer

    from anonreid.orchestration.cli import app

    root = typer.main.get_command(app)
    helps = {}
    for path in (("train",), ("evaluate",), ("camera", "run"), ("bench", "event-stats")):
        cmd = root
        for name in path:
            cmd = cmd.commands[name]  # type: ignore[attr-defined]
        helps[" ".join(path)] = {opt: next(p.help for p in cmd.params if opt in p.opts) for opt in ("--time-unit", "--sensor")}
    assert len({repr(h) for h in helps.values()}) == 1, helps


def test_evaluate_refuses_a_bad_unit_naming_the_option(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from anonreid.orchestration.cli import app

    res = CliRunner().invoke(app, ["evaluate", "--dataset", "event-reid", "--root", str(tmp_path), "--out",
                                   str(tmp_path / "o"), "--time-unit", "fortnight"])
    assert res.exit_code == 2 and "error: --time-unit: unknown time unit 'fortnight'" in res.output, res.output


def test_train_takes_the_shared_time_unit_and_sensor_options(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from anonreid.orchestration.cli import app

    runner = CliRunner()
    assert "--time-unit" in runner.invoke(app, ["train", "--help"]).output
    res = runner.invoke(app, ["train", "--data", str(tmp_path), "--out", str(tmp_path / "r"), "--time-unit", "fortnight"])
    assert res.exit_code == 2 and "error: --time-unit: unknown time unit 'fortnight'" in res.output, res.output
    res = runner.invoke(app, ["train", "--data", str(tmp_path), "--out", str(tmp_path / "r"), "--sensor", "640by480"])
    assert res.exit_code == 2 and "error: --sensor:" in res.output, res.output
    # good values pass on to the next check (the world dataset)
    res = runner.invoke(app, ["train", "--data", str(tmp_path), "--out", str(tmp_path / "r"), "--time-unit", "100us",
                              "--sensor", "640x480"])
    assert res.exit_code == 2 and "no world.json" in res.output, res.output
