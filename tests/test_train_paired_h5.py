"""``anonreid train --dataset paired-h5``: E_rec trained on a user's paired events + frames in the E2VID
family's HDF5 layout (issue #18 item 3), on files the test writes itself from the project's synthetic
world (``events/xs, ys, ts, ps`` with ``ts`` in float seconds, ``images/imageNNNNNNNNN`` uint8 frames with
attribute ``timestamp``, root attribute ``sensor_resolution``). The run's E_rec is then the frozen
attacker of ``--dataset event-reid --rec RUN``. Bad input is refused with the file and the field named."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from anonreid.orchestration.cli import app

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SENSOR = "64x48"
TINY = ["--config", "tiny", "--no-progress", "--set", "threads=1"]
FRAME_LAG_US = 33_333  # a world frame shows the scene at the end of its window: timestamp = window start + window


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three people at 64x48, 0.6 s a pass (12 passes, a few seconds to simulate)."""
    from anonreid.events.world.dataset import simulate_dataset
    from anonreid.orchestration.config import WorldConfig

    cfg = WorldConfig(identities=3, train_identities=2, resolution=SENSOR, pass_seconds=0.6, seed=2)
    return simulate_dataset(tmp_path_factory.mktemp("paired-h5") / "world", cfg, progress=False)


def write_paired(path: Path, events: np.ndarray, frames: np.ndarray, frame_ts_us: np.ndarray, *,
                 sensor_hw: tuple[int, int] | None = (48, 64), ts_scale: float = 1e-6, ts_dtype: Any = np.float64,
                 skip: tuple[str, ...] = ()) -> Path:
    """The E2VID / event_cnn_minimal layout: timestamps (events and frames) times ``ts_scale`` from us."""
    with h5py.File(path, "w") as f:
        if sensor_hw is not None:
            f.attrs["sensor_resolution"] = sensor_hw
        for name, col in (("xs", events["x"]), ("ys", events["y"]), ("ts", events["t"] * ts_scale),
                          ("ps", (events["p"] > 0).astype(np.uint8))):
            if f"events/{name}" not in skip:
                f.create_dataset(f"events/{name}", data=np.asarray(col).astype(ts_dtype) if name == "ts" else col)
        for i, (frame, t) in enumerate(zip(frames, frame_ts_us, strict=True)):
            ds = f.create_dataset(f"images/image{i:09d}", data=frame)
            if f"images/image{i:09d}.timestamp" not in skip:
                ds.attrs["timestamp"] = np.asarray(t * ts_scale).astype(ts_dtype)
    return path


def world_pass(world: Path, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(events, frames, frame timestamps us) of the world's k-th pass, frames stamped at their window's end."""
    from anonreid.events.world import WorldDataset

    ds = WorldDataset(world)
    data = ds.load_pass(ds.passes[k].pass_id)
    return data.events, data.frames, np.asarray(data.frame_ts) + FRAME_LAG_US


@pytest.fixture(scope="module")
def paired(world: Path) -> Path:
    """A directory of three paired recordings (float seconds), one in a sub-folder."""
    root = world.parent / "paired"
    (root / "day2").mkdir(parents=True)
    for k, rel in enumerate(("a.h5", "b.hdf5", "day2/c.h5")):
        write_paired(root / rel, *world_pass(world, k))
    return root


def _sidecar(run: Path, name: str) -> dict:
    return json.loads((run / "checkpoints" / f"{name}.json").read_text())


def test_train_rec_on_paired_h5_then_use_it_as_the_event_reid_attacker(world: Path, paired: Path,
                                                                      tmp_path: Path) -> None:
    """The real CLI: E_rec on three paired recordings (unit inferred from the float seconds), its
    checkpoint with the data fingerprint; then ``--dataset event-reid --rec RUN`` takes that E_rec."""
    from anonreid.events.world.export import export_event_reid
    from anonreid.models.checkpoint import load_checkpoint
    from anonreid.models.sources import rec_checkpoint

    run = tmp_path / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the inferred unit (tested below)
        result = CliRunner().invoke(app, ["train", "--dataset", "paired-h5", "--root", str(paired), "--stage", "rec",
                                          "--out", str(run), *TINY])
    assert result.exit_code == 0, result.output
    summary = json.loads((run / "summary.json").read_text())
    assert set(summary["stages"]) == {"rec"}
    fp = summary["data_fingerprint"]
    assert fp.startswith(f"paired-h5:{paired.resolve()}:s:{SENSOR}:")
    assert summary["train_clips"] > 0 and summary["val_clips"] > 0
    meta = _sidecar(run, "e_rec")["metadata"]
    assert meta["data_fingerprint"] == fp and meta["stage"] == "rec" and meta["budget"]["steps"] == 12
    assert "anonreid train --dataset paired-h5 --root" in meta["command"]
    assert 0 < meta["metrics"]["val_ssim"] <= 1
    assert load_checkpoint(run / "checkpoints" / "e_rec").cfg.family == "reconstruction"
    assert rec_checkpoint(run) == run / "checkpoints" / "e_rec"  # --rec RUN names it
    # the E_rec of Event-ReId training: copied into that run, its raw reconstructions the reference
    full = export_event_reid(world, tmp_path / "full")
    real = tmp_path / "real"
    result = CliRunner().invoke(app, ["train", "--dataset", "event-reid", "--root", str(full), "--time-unit", "us",
                                      "--rec", str(run), "--stage", "reid", "--out", str(real), *TINY,
                                      "--set", "joint.minmax.enabled=false"])
    assert result.exit_code == 0, result.output
    assert (real / "checkpoints" / "e_rec.safetensors").read_bytes() == \
        (run / "checkpoints" / "e_rec.safetensors").read_bytes()
    assert len(list((real / "cache" / "reference").glob("*.npy"))) == 2  # E_rec(X) of the train and val clips


def test_windows_take_the_latest_frame_at_or_before_their_end(world: Path, tmp_path: Path) -> None:
    """The reference rule, the time split, frames resized to the sensor, integer timestamps in a given unit."""
    from anonreid.events.paired_h5_dataset import VAL_FRACTION, open_paired_h5_dataset, resize_frames
    from anonreid.events.types import SensorSize

    events, frames, frame_ts = world_pass(world, 0)
    keep = np.arange(0, len(frames), 2)  # 15 fps frames, at 2x the sensor's size: 66.7 ms apart, 33.3 ms windows
    big = np.repeat(np.repeat(frames[keep], 2, axis=1), 2, axis=2)
    path = write_paired(tmp_path / "r.h5", events, big, frame_ts[keep], sensor_hw=None, ts_scale=1e3,
                        ts_dtype=np.int64)  # integer ns
    ds = open_paired_h5_dataset(path, "ns", SensorSize.parse(SENSOR))
    rec = ds.recordings["r"]
    assert rec.frame_hw == (96, 128) and np.array_equal(rec.frame_ts, frame_ts[keep])
    ends = rec.starts + ds.window_us
    for k, j in enumerate(rec.reference):  # the latest frame at or before the end, at most 66.7 ms old
        assert j >= 0 and rec.frame_ts[j] <= ends[k] and (j + 1 == len(keep) or rec.frame_ts[j + 1] > ends[k])
        assert ends[k] - rec.frame_ts[j] <= 66_667
    train, val = ds.split("train"), ds.split("val")
    (tp,), (vp,) = train.passes, val.passes
    assert vp.num_windows == round(VAL_FRACTION * len(rec.starts)) and tp.num_windows + vp.num_windows == len(rec.starts)
    data = val.load_pass(vp.pass_id)
    assert data.frames.shape == (vp.num_windows, 48, 64) and data.events["t"][0] >= data.frame_ts[0]
    j = rec.reference[tp.num_windows]
    assert np.array_equal(data.frames[0], resize_frames(big[j : j + 1], SensorSize.parse(SENSOR))[0])
    assert np.abs(data.frames[0].astype(int) - frames[keep][j]).mean() < 4  # back from 2x, blurred by the antialiasing
    assert np.isfinite(data.boxes).all() and (data.boxes[:, 2] - data.boxes[:, 0] == 64).all()


def test_a_float_unit_is_inferred_with_a_warning_and_the_frames_are_read_in_it(world: Path, tmp_path: Path) -> None:
    from anonreid.events.io import TimeUnitWarning
    from anonreid.events.paired_h5_dataset import open_paired_h5_dataset

    path = write_paired(tmp_path / "s.h5", *world_pass(world, 1))
    with pytest.warns(TimeUnitWarning, match=r"s\.h5: time unit not given; inferred s"):
        ds = open_paired_h5_dataset(path)
    assert ds.time_unit == "s" and str(ds.sensor) == SENSOR
    assert np.array_equal(ds.recordings["s"].frame_ts, world_pass(world, 1)[2])


def test_bad_paired_input_is_refused_naming_the_file_and_the_field(world: Path, paired: Path, tmp_path: Path) -> None:
    """Exit code 2, a message naming the file and the dataset or attribute, nothing trained."""
    events, frames, frame_ts = world_pass(world, 0)
    run = tmp_path / "run"

    def refused(root: Path, *extra: str) -> str:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = CliRunner().invoke(app, ["train", "--dataset", "paired-h5", "--root", str(root), "--out",
                                              str(run), *TINY, *extra])
        assert result.exit_code == 2, result.output
        assert "corrupt" not in result.output and "Traceback" not in result.output, result.output
        return " ".join(result.output.split())

    def bad(name: str, **kw: Any) -> Path:
        return write_paired(tmp_path / name, kw.pop("events", events), kw.pop("frames", frames),
                            kw.pop("frame_ts", frame_ts), **kw)

    out = refused(bad("no_ps.h5", skip=("events/ps",)))
    assert "no_ps.h5: missing dataset events/ps" in out
    path = bad("no_ts.h5", skip=("images/image000000003.timestamp",))
    assert "no_ts.h5, images/image000000003: frame without its 'timestamp' attribute" in refused(path)
    swapped = frame_ts.copy()
    swapped[[4, 5]] = swapped[[5, 4]]
    out = refused(bad("unsorted_frames.h5", frame_ts=swapped))
    assert "unsorted_frames.h5, images/image000000005.attrs['timestamp']: frame timestamps must increase" in out
    backwards = events.copy()
    backwards["t"][100] = backwards["t"][-1]
    out = refused(bad("unsorted_events.h5", events=backwards))
    assert "unsorted_events.h5, events/ts[101]: timestamps go backwards (0.014968 after 0.599763)" in out
    out = refused(bad("us_frames.h5", frame_ts=frame_ts * 1e6))  # frames in us, events in seconds
    assert "us_frames.h5, images: no window with a reference frame: no frame timestamp falls inside" in out
    assert "--time-unit" in out
    out = refused(bad("no_sensor.h5", sensor_hw=None))
    assert "no_sensor.h5: no sensor size" in out and "--sensor WxH" in out
    out = refused(bad("float_frames.h5", frames=frames.astype(np.float32) / 255))
    assert "float_frames.h5, images/image000000000: a frame must be uint8" in out
    sizes = list(frames)
    sizes[2] = frames[2][:, :32]
    out = refused(bad("sizes.h5", frames=sizes))  # found when the clips are built, still before training
    assert "sizes.h5, images/image000000002: frames of different sizes: (48, 32) here" in out
    with h5py.File(tmp_path / "no_frames.h5", "w") as f:
        f.attrs["sensor_resolution"] = (48, 64)
        for name in ("xs", "ys", "ts", "ps"):
            f.create_dataset(f"events/{name}", data=np.arange(3))
    assert "no_frames.h5: no frames: expected the group images/" in refused(tmp_path / "no_frames.h5")
    (tmp_path / "empty").mkdir()
    assert "no .h5 / .hdf5 files" in refused(tmp_path / "empty")
    # what the dataset cannot train, and options that belong to other datasets
    out = refused(paired, "--stage", "rec", "--stage", "joint")
    assert "trains the stages rec, adaptive, finetune, linear, inv (E_rec and the reconstruction attacks) only, " \
           "not joint (joint: E_an + E_reid learn identities" in out
    assert "--rec is the frozen E_rec of --dataset event-reid" in refused(paired, "--rec", str(tmp_path))
    assert "data.val_identities = 3 recordings" in refused(paired, "--set", "data.val_identities=3")
    assert "no validation clip" in refused(paired, "--set", "data.clip_len=5", "--set", "data.clip_stride=1")
    assert not (run / "checkpoints").exists()  # nothing trained


def _anonymizer(path: Path, against_samples: int) -> Path:
    """An anonymizer checkpoint (random weights: the attacks' plumbing, not their strength, is tested)
    whose metadata says it was trained against an E_rec of ``against_samples`` clips."""
    from anonreid.models.budget import Budget
    from anonreid.models.checkpoint import save_checkpoint
    from anonreid.models.registry import create_model

    budget = Budget("e_rec", "reconstruction", against_samples // 4, 4)
    save_checkpoint(path, create_model("anonymizer_paper", in_bins=5),
                    {"stage": "joint", "attackers_in_training": [budget.as_dict()]})
    return path


def test_the_reconstruction_attacks_train_on_paired_recordings_against_a_frozen_anonymizer(
        paired: Path, tmp_path: Path) -> None:
    """``--anonymizer``: E_rec, then the adaptive, fine-tuned and linear attacks (the default stages) on the
    real events anonymized by that frozen E_an, judged on the real frames; ``inv`` by name, frames only."""
    anon = _anonymizer(tmp_path / "anon" / "anonymizer", 4)  # 3x: 12 clips
    run = tmp_path / "run"
    short = [f"--set={k}" for k in ("rec.steps=3", "adaptive.steps=2", "finetune.steps=1", "inv.steps=1")]

    def train(*extra: str) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the inferred unit
            return CliRunner().invoke(app, ["train", "--dataset", "paired-h5", "--root", str(paired), "--out", str(run),
                                            *TINY, *short, *extra])

    result = train("--anonymizer", str(anon.parent))
    assert result.exit_code == 0, result.output
    summary = json.loads((run / "summary.json").read_text())
    assert set(summary["stages"]) == {"rec", "adaptive", "finetune", "linear"}
    assert (run / "checkpoints" / "anonymizer.safetensors").read_bytes() == anon.with_suffix(".safetensors").read_bytes()
    fp = summary["data_fingerprint"]
    for name, stage in (("e_rec_adaptive", "adaptive"), ("e_rec_finetuned", "finetune"), ("e_lin", "linear")):
        meta = _sidecar(run, name)["metadata"]
        assert meta["data_fingerprint"] == fp and meta["stage"] == stage
        assert meta["trained_on"].startswith("anonymized by anonymizer_paper")
        assert "--anonymizer" in meta["command"]
    assert _sidecar(run, "e_rec_adaptive")["metadata"]["budget_rule"]["ok"]
    for stage, key in (("adaptive", "val_ssim"), ("finetune", "val_ssim"), ("linear", "val_attacker_ssim")):
        assert 0 < summary["stages"][stage]["metrics"][key] <= 1
    # inv, asked for by name, without the appearance loss (its net needs enrollment photos)
    result = train("--anonymizer", str(anon.parent), "--resume", "--stage", "inv")
    assert result.exit_code == 2 and "--set inv.w_emb=0" in " ".join(result.output.split()), result.output
    result = train("--anonymizer", str(anon.parent), "--resume", "--stage", "inv", "--set", "inv.w_emb=0")
    assert result.exit_code == 0, result.output
    assert _sidecar(run, "e_inv")["metadata"]["appearance_loss"] is False
    # judged on the held-out windows' real frames: every view, its interval over one-second blocks, its check
    out = tmp_path / "eval"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = CliRunner().invoke(app, ["evaluate", "--dataset", "paired-h5", "--root", str(paired), "--run", str(run),
                                          "--out", str(out), "--clips-per-pass", "4", "--no-progress"])
    assert result.exit_code == 0, result.output
    res = json.loads((out / "results.json").read_text())
    rows = {r["view"]: r for r in res["rows"]}
    assert set(rows) == {"raw", "anonymized", "adaptive", "finetuned", "linear", "inversion"}
    assert res["recordings"] == ["a", "b", "day2/c"] and res["fingerprint"] == fp
    # the last 20% of a 0.6 s recording is one clip of 3 windows: 3 clips in 3 one-second blocks, too few to
    # bootstrap, so every interval is the exact bound and no check can pass or fail
    assert (res["clips"], res["clusters"]) == (3, 3)
    raw = rows["raw"]["score"]["ssim"]["value"]
    for view, r in rows.items():
        e, floor = r["score"]["ssim"], r["score"]["ssim_floor"]
        assert e["ci_low"] < floor < e["ci_high"] and e["method"] == "exact bound on identities"
        if view == "raw":
            assert r["state"] is None and r["recovered"] is None
        else:
            assert r["state"] == "insufficient evidence"
            assert r["recovered"] == pytest.approx((e["value"] - floor) / (raw - floor))
    assert rows["adaptive"]["budget"]["budget"]["total"] == 2 * 8 and rows["adaptive"]["budget"]["rule"]["ok"]
    assert rows["linear"]["budget"]["budget"] is None  # the closed form has no training budget
    assert (out / "image_grid.png").stat().st_size > 2000
    md = (out / "results.md").read_text()
    assert "anonreid evaluate --run" in md and "adaptive attacker" in md and "one-second blocks" in md
    assert "the run trained on these recordings" in res["test_split"]
    # recordings the run never trained on are judged whole
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "a.h5").write_bytes((paired / "a.h5").read_bytes())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = CliRunner().invoke(app, ["evaluate", "--dataset", "paired-h5", "--root", str(tmp_path / "other"),
                                          "--run", str(run), "--out", str(tmp_path / "eval2"), "--clips-per-pass", "4",
                                          "--no-progress"])
    assert result.exit_code == 0, result.output
    other = json.loads((tmp_path / "eval2" / "results.json").read_text())
    assert other["test_split"].startswith("every usable window") and other["recordings"] == ["a"]
    assert other["clips"] > 3 and other["fingerprint"] != fp
    # the same recordings judged whole by a run that did not train on them, into the same output directory:
    # its clips are not the cached validation clips of the first evaluation
    foreign = tmp_path / "foreign"
    shutil.copytree(run / "checkpoints", foreign / "checkpoints")
    shutil.copy(run / "config.yaml", foreign / "config.yaml")
    for sidecar in (foreign / "checkpoints").glob("*.json"):
        sidecar.write_text(sidecar.read_text().replace(fp, "paired-h5:elsewhere"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = CliRunner().invoke(app, ["evaluate", "--dataset", "paired-h5", "--root", str(paired), "--run",
                                          str(foreign), "--out", str(out), "--clips-per-pass", "4", "--no-progress"])
    assert result.exit_code == 0, result.output
    whole = json.loads((out / "results.json").read_text())
    assert whole["test_split"].startswith("every usable window") and whole["clips"] > res["clips"] == 3


def test_paired_attacks_refuse_what_they_cannot_do(paired: Path, tmp_path: Path) -> None:
    """Exit code 2 with the reason: no --anonymizer, no E_rec to go through, a model that is not an
    anonymizer, --anonymizer off paired data, an attack under the 3x budget rule."""
    anon = _anonymizer(tmp_path / "anon", 4)

    def refused(*extra: str, dataset: tuple[str, ...] = ("--dataset", "paired-h5", "--root", str(paired))) -> str:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = CliRunner().invoke(app, ["train", *dataset, "--out", str(tmp_path / "run"), *TINY, *extra])
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output
        return " ".join(result.output.split())

    assert "give it with --anonymizer" in refused("--stage", "adaptive")
    assert "has none: add --stage rec" in refused("--anonymizer", str(anon), "--stage", "linear")
    assert not (tmp_path / "run" / "cache").exists()  # refused before any clip was built
    rec = tmp_path / "rec"
    from anonreid.models.checkpoint import save_checkpoint
    from anonreid.models.registry import create_model

    save_checkpoint(rec, create_model("firenet", in_bins=5))
    assert "a reconstruction model 'firenet'" in refused("--anonymizer", str(rec), "--stage", "adaptive")
    assert "no anonymizer checkpoint there" in refused("--anonymizer", str(tmp_path / "nowhere"))
    assert "--anonymizer is the frozen anonymizer" in refused("--anonymizer", str(anon), dataset=(
        "--data", str(paired)))
    result = CliRunner().invoke(app, ["evaluate", "--dataset", "paired-h5", "--out", str(tmp_path / "ev")])
    assert result.exit_code == 2 and "--root PATH (the paired HDF5 recordings) is required" in result.output
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "config.yaml").write_text("name: tiny\n")
    result = CliRunner().invoke(app, ["evaluate", "--dataset", "paired-h5", "--root", str(paired), "--run",
                                      str(tmp_path / "plain"), "--out", str(tmp_path / "ev")])
    assert result.exit_code == 2 and "anonymizer.json: the run has no anonymizer to attack" in result.output
    strong = _anonymizer(tmp_path / "strong", 4000)  # 3x: 12000 clips; tiny trains 21 x 8
    out = refused("--anonymizer", str(strong), "--stage", "adaptive")
    assert "adaptive" in out and "12000" in out


def test_paired_test_clips_are_clustered_by_recording_and_second(world: Path, tmp_path: Path) -> None:
    """The bootstrap's unit: a clip belongs to the second of its recording in which its last window falls."""
    from anonreid.events.paired_h5_dataset import open_paired_h5_dataset
    from anonreid.models.config import load_train_config
    from anonreid.models.data import build_clips
    from anonreid.models.evaluation.paired import BLOCK_WINDOWS, _blocks

    parts = [world_pass(world, k) for k in range(12)]  # one 7.2 s recording: the world's 12 passes in a row
    span = 18 * 33_333
    events = np.concatenate([e.copy() for e, _, _ in parts])
    events["t"] = np.concatenate([e["t"] + k * span for k, (e, _, _) in enumerate(parts)])
    frames = np.concatenate([f for _, f, _ in parts])
    frame_ts = np.concatenate([t + k * span for k, (_, _, t) in enumerate(parts)])
    path = write_paired(tmp_path / "long.h5", events, frames, frame_ts)
    cfg = load_train_config("tiny").data.model_copy(update={"clip_stride": 1})
    test = open_paired_h5_dataset(path, "s", None, cfg.window_us).split("val")
    clips = build_clips(test, test.identities(), cfg, None, max_clips_per_pass=100, progress=False)
    groups = _blocks(test, clips, cfg, 100)
    _, start, end = test.segments["long:val"]
    usable = test.recordings["long"].usable[start:end]
    lasts = [start + k + cfg.clip_len - 1 for k in range(end - start - cfg.clip_len + 1) if usable[k : k + cfg.clip_len].all()]
    assert len(clips) == len(lasts) > 20
    assert groups.tolist() == [f"long@{w // BLOCK_WINDOWS}" for w in lasts]
    assert len(set(groups.tolist())) == 3  # 1.44 s of validation windows (seconds 5.76-7.2) touch three seconds
