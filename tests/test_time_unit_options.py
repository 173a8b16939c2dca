"""Issue 18, item 1: HDF5 float timestamps are a unit like any other unknown one (inferred with a
warning, given, or refused), and ``anonreid train`` takes the shared ``--time-unit`` / ``--sensor``."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from anonreid.events.io import TimeUnitWarning, open_events, read_events
from anonreid.events.types import EventFormatError

US = np.sort(np.random.default_rng(0).integers(0, 2_000_000, 4000))  # 2 s of whole-microsecond times


def _h5(path: Path, ts: np.ndarray) -> Path:
    import h5py

    with h5py.File(path, "w") as f:
        f.attrs["width"], f.attrs["height"] = 64, 48
        f.create_dataset("events/ts", data=ts)
        for name, dt in (("xs", np.uint16), ("ys", np.uint16), ("ps", np.int8)):
            f.create_dataset(f"events/{name}", data=np.ones(len(ts), dt))
    return path


@pytest.mark.parametrize(("unit", "per_us"), [("s", 1e-6), ("ms", 1e-3), ("us", 1.0), ("100ns", 10.0)])
def test_float_hdf5_timestamps_infer_their_unit_with_a_warning(tmp_path: Path, unit: str, per_us: float) -> None:
    path = _h5(tmp_path / "f.h5", US * per_us)
    with pytest.warns(TimeUnitWarning, match=rf"f\.h5: time unit not given; inferred {unit} from its float timestamps"):
        ev = read_events(path)
    assert ev["t"].tolist() == US.tolist()


def test_a_given_unit_is_used_and_an_impossible_one_refused(tmp_path: Path) -> None:
    path = _h5(tmp_path / "sec.h5", US * 1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # given: no warning
        assert read_events(path, time_unit="s")["t"].tolist() == US.tolist()
        assert open_events(path, time_unit="1").time_unit == "1"  # seconds per tick: the same unit
    # read as us, 4000 events would span 2 us: faster than any sensor reads out
    with pytest.raises(EventFormatError, match=r"sec\.h5: read in us, 4000 events span .*faster than any event sensor "
                                               r"reads out .*--time-unit .*suggest s\)"):
        open_events(path, time_unit="us")
    # continuous times (a simulator's, not a sensor's clock) are whole microseconds in no unit: refused, naming the fix
    rough = _h5(tmp_path / "rough.h5", np.sort(US + np.random.default_rng(1).uniform(0.1, 0.9, len(US)) + 5e6) * 1e-6)
    with pytest.raises(EventFormatError, match=r"rough\.h5: float timestamps that are whole microseconds in no "
                                               r"unit.*--time-unit"):
        open_events(rough)
    assert read_events(rough, time_unit="s")["t"][-1] == pytest.approx(US[-1] + 5e6, abs=1)
    # float32 seconds are whole microseconds within their precision: inferred
    with pytest.warns(TimeUnitWarning, match="inferred s"):
        assert open_events(_h5(tmp_path / "f32.h5", (US * 1e-6 + 5).astype(np.float32))).time_unit == "s"


def test_integer_hdf5_timestamps_stay_microseconds_without_a_warning(tmp_path: Path) -> None:
    path = _h5(tmp_path / "i.h5", US.astype(np.int64))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_events(path)["t"].tolist() == US.tolist()


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
