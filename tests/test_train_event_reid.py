"""``anonreid train --dataset event-reid``: the raw ReId baseline and E_an + E_reid trained on real-format
events (issue #18 item 3), on fixtures the project writes itself: the world exported as the authors'
chunk files (ticks of 100 us, train/query/gallery lists, gaps in the chunk numbers) and as the full
``<ID>/camNN/events.txt`` layout. The privacy term's reference is the frozen E_rec's reconstruction of
the raw events (:mod:`anonreid.models.sources`); what training wrote, ``anonreid evaluate --dataset
event-reid`` reads."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from anonreid.orchestration.cli import app

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SENSOR = "96x72"
#: tiny preset, without the min-max pool (it needs reference frames and enrollment photos)
TINY = ["--config", "tiny", "--no-progress", "--set", "threads=1", "--set", "joint.minmax.enabled=false"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from anonreid.events.world.dataset import simulate_dataset
    from anonreid.orchestration.config import WorldConfig

    cfg = WorldConfig(identities=5, train_identities=3, resolution=SENSOR, pass_seconds=0.6, seed=1)
    return simulate_dataset(tmp_path_factory.mktemp("train-ereid") / "world", cfg, progress=False)


@pytest.fixture(scope="module")
def chunks(world: Path) -> Path:
    from anonreid.events.io import read_list_file
    from anonreid.events.world.export import export_event_reid_chunks

    root = export_event_reid_chunks(world, world.parent / "chunks")
    lines = read_list_file(root / "train_list.txt")  # the training sequences get gaps too: every 7th unlisted
    (root / "train_list.txt").write_text("".join(f"{rel} {ident}\n" for k, (rel, ident) in enumerate(lines) if k % 7 != 3))
    return root


def _sidecar(run: Path, name: str) -> dict:
    return json.loads((run / "checkpoints" / f"{name}.json").read_text())


@pytest.mark.slow
def test_train_on_event_reid_chunks_then_evaluate_the_run(chunks: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                          recwarn: pytest.WarningsRecorder) -> None:
    """The real CLI end to end: reid + joint on the chunk-and-list layout (unit inferred with a warning,
    single-window clips, the shipped E_rec as the frozen attacker), then evaluate reads the run."""
    from anonreid.events.io import parse_chunk_name, read_list_file
    from anonreid.models.bundle import DEFAULT_WEIGHTS
    from anonreid.models.checkpoint import load_checkpoint
    from anonreid.models.config import load_train_config

    train_list = read_list_file(chunks / "train_list.txt")
    indices = sorted(parse_chunk_name(rel).index for rel, _ in train_list if parse_chunk_name(rel).camera == 1
                     and parse_chunk_name(rel).identity == train_list[0][1])
    assert indices != list(range(indices[0], indices[-1] + 1))  # the fixture's chunk numbers have gaps
    run = tmp_path / "run"
    args = ["train", "--dataset", "event-reid", "--root", str(chunks), "--sensor", SENSOR, "--out", str(run), *TINY,
            "--set", "data.val_identities=1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    # warned: through the log when the CLI's logging.captureWarnings takes the warning, or as a warning when an
    # earlier in-process CLI call already turned capturing on (then captureWarnings is a no-op and pytest's
    # per-test recorder holds it): the full suite takes the second path, this file alone the first
    warned = caplog.text + "\n".join(str(w.message) for w in recwarn)
    assert re.search(r"train_list\.txt: time unit not given; inferred 100us", warned)
    summary = json.loads((run / "summary.json").read_text())
    assert set(summary["stages"]) == {"reid", "joint"}  # the real-data stages, by default
    assert summary["data_fingerprint"].startswith(f"event-reid:{chunks.resolve()}:lists:100us:{SENSOR}")
    train_ids = sorted({ident for _, ident in train_list})
    assert summary["train_clips"] == sum(1 for _, i in train_list if i in train_ids[:-1])  # one clip per chunk
    cfg = load_train_config(run / "config.yaml")
    assert cfg.data.clip_len == 1 and cfg.data.val_identities == 1  # single-window clips, recorded
    # the frozen E_rec is the shipped one, copied into the run; its own raw reconstruction is the reference
    assert (run / "checkpoints" / "e_rec.safetensors").read_bytes() == (DEFAULT_WEIGHTS / "e_rec.safetensors").read_bytes()
    metrics = summary["stages"]["joint"]["metrics"]
    assert metrics["val_attacker_ssim_raw"] > 0.99 and 0 < metrics["val_attacker_ssim"] < metrics["val_attacker_ssim_raw"]
    for name in ("reid_raw", "anonymizer", "reid"):
        meta = _sidecar(run, name)["metadata"]
        assert meta["data_fingerprint"] == summary["data_fingerprint"], name
        assert meta["identities"] == {"train": train_ids[:-1], "val": train_ids[-1:]}, name
        load_checkpoint(run / "checkpoints" / name)  # loads
    assert "anonreid train --dataset event-reid --root" in _sidecar(run, "anonymizer")["metadata"]["command"]
    # evaluate reads it: raw vs anonymized ReId on the official lists, a verdict (no test id was seen)
    out = tmp_path / "eval"
    query, gallery = (read_list_file(chunks / f"{r}_list.txt") for r in ("query", "gallery"))
    result = CliRunner().invoke(app, ["evaluate", "--dataset", "event-reid", "--root", str(chunks), "--run", str(run),
                                      "--sensor", SENSOR, "--time-unit", "100us", "--out", str(out), "--no-encryption",
                                      "--no-progress"])
    assert result.exit_code == 0, result.output
    res = json.loads((out / "results.json").read_text())
    for view in ("raw", "anonymized"):
        r = res["reid"]["gt"][view]
        assert (r["num_queries"], r["num_gallery"]) == (len(query), len(gallery)), view
    proto = res["protocol"]
    assert proto["verdict"] and proto["seen_test_identities"] == []
    assert proto["test_identities"] == len({ident for _, ident in query + gallery})  # the lists' test ids, checked
    assert (proto["train_identities"], proto["val_identities"]) == (2, 1)
    assert "missing" in res["reconstruction"]  # no reference frames on real data


def test_train_on_the_full_layout_records_its_split_and_the_protocol_checks_it(world: Path, tmp_path: Path) -> None:
    """The full layout (split files), validating on the test split (data.val_identities = 0): an
    evaluation on Event-ReId then refuses the verdict, naming the test identities the run saw."""
    from anonreid.events.event_reid_dataset import listed_identities
    from anonreid.events.world import WorldDataset
    from anonreid.events.world.export import export_event_reid
    from anonreid.models.bundle import DEFAULT_WEIGHTS
    from anonreid.models.config import load_train_config
    from anonreid.models.evaluation.protocol import check_protocol
    from anonreid.models.pipeline import run_training
    from anonreid.models.sources import EventReidSource

    root = export_event_reid(world, tmp_path / "full")
    cfg = load_train_config("tiny", ["threads=1", "joint.minmax.enabled=false"])
    run = tmp_path / "run"
    summary = run_training(EventReidSource(root, DEFAULT_WEIGHTS / "e_rec", "us"), cfg, run, ["reid"], progress=False)
    ds = WorldDataset(world)
    meta = _sidecar(run, "reid_raw")["metadata"]
    assert meta["identities"] == {"train": ds.identities("train"), "val": ds.identities("test")}
    assert summary["data_fingerprint"] == meta["data_fingerprint"] and ":full:us:" in meta["data_fingerprint"]
    assert summary["train_clips"] > 0 and summary["val_clips"] > 0
    test_ids = listed_identities(root, "test")
    assert test_ids == ds.identities("test")
    proto = check_protocol(run, load_train_config(run / "config.yaml"), "event-reid", None, test_ids)
    assert not proto.verdict and proto.seen_test_identities == test_ids
    assert "--set data.val_identities=N" in proto.reason


def test_bad_event_reid_training_input_is_refused_clearly(chunks: Path, tmp_path: Path) -> None:
    """A bad root, missing lists, a missing --rec, no sensor size, a stage or config real events cannot
    train: exit code 2 with a message naming the fix, before anything trains."""
    run = tmp_path / "run"
    base = ["train", "--dataset", "event-reid", "--out", str(run), *TINY]

    def refused(*extra: str) -> str:
        result = CliRunner().invoke(app, [*base, *extra])
        assert result.exit_code == 2, result.output
        return result.output

    assert "--root PATH" in refused()
    assert "Event-ReId root directory not found" in refused("--root", str(tmp_path / "nowhere"), "--sensor", SENSOR)
    no_train = tmp_path / "no-train-list"
    shutil.copytree(chunks, no_train)
    (no_train / "train_list.txt").unlink()
    assert "not train_list.txt (the train lists)" in refused("--root", str(no_train), "--sensor", SENSOR)
    (no_train / "query_list.txt").unlink()
    (no_train / "gallery_list.txt").unlink()
    assert "no <ID>/cam*/events.txt" in refused("--root", str(no_train), "--sensor", SENSOR)
    out = refused("--root", str(chunks), "--sensor", SENSOR, "--rec", str(tmp_path / "no-rec"))
    assert f"--rec {tmp_path / 'no-rec'}: no E_rec checkpoint" in out
    assert "do not record their sensor size" in refused("--root", str(chunks), "--time-unit", "100us")
    out = refused("--root", str(chunks), "--sensor", SENSOR, "--stage", "rec")
    assert "not rec (rec: E_rec learns raw events -> reference frames" in out
    result = CliRunner().invoke(app, ["train", "--dataset", "event-reid", "--root", str(chunks), "--sensor", SENSOR,
                                      "--out", str(run), "--config", "tiny"])
    assert result.exit_code == 2 and "joint.minmax.enabled=false" in result.output
    assert "--data DIR" in CliRunner().invoke(app, ["train", "--out", str(run)]).output
    assert not run.exists() or not (run / "checkpoints").exists()  # nothing trained


def test_the_pseudo_reference_is_the_frozen_attackers_raw_reconstruction(chunks: Path, tmp_path: Path) -> None:
    """The clips' frames on real events are E_rec(X) (quantised like frames), cached by E_rec and clips."""
    import torch

    from anonreid.models.bundle import DEFAULT_WEIGHTS
    from anonreid.models.checkpoint import load_checkpoint
    from anonreid.models.config import load_train_config
    from anonreid.models.reconstruction import run_sequence
    from anonreid.models.sources import EventReidSource
    from anonreid.models.train import prepare_context

    cfg = load_train_config("tiny", ["threads=1", "joint.minmax.enabled=false", "data.val_identities=1"])
    src = EventReidSource(chunks, DEFAULT_WEIGHTS / "e_rec", "100us", SENSOR)
    ctx = prepare_context(src, cfg, tmp_path / "run", progress=False)
    rec = load_checkpoint(DEFAULT_WEIGHTS / "e_rec").model.eval()
    with torch.no_grad():
        pred, _ = run_sequence(rec, torch.from_numpy(np.asarray(ctx.train.voxels[:4], np.float32)))
    frames = np.asarray(ctx.train.frames[:4], np.float32) / 255
    assert frames.std() > 0.01  # not the zeros the dataset gives
    assert np.abs(frames - pred[:, :, 0].numpy()).max() <= 0.5 / 255 + 1e-6
    assert ctx.photos is None and ctx.data_dir is None and len(list((tmp_path / "run" / "cache" / "reference").glob("*.npy"))) == 2
