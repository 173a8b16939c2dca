"""Head redaction (events/redaction.py): the camera drops the events of each person's head band before
voxelising, training and evaluation cut the same band from detector-like boxes, and the anonymizer
checkpoint tells the camera to do it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import PREVIOUS_WEIGHTS

from anonreid.events.redaction import head_bands, redact_pass, redact_window
from anonreid.events.types import make_events


def _grid_events(t0: int, t1: int, width: int = 40, height: int = 60) -> np.ndarray:
    """One event on every pixel of a ``width`` x ``height`` patch, at times spread over [t0, t1)."""
    ys, xs = np.mgrid[0:height, 0:width]
    n = xs.size
    t = np.linspace(t0, t1 - 1, n).astype(np.int64)
    return make_events(t, xs.ravel(), ys.ravel(), np.ones(n, np.int8))


def test_head_band_is_the_top_of_the_box_widened_by_the_margin() -> None:
    band = head_bands(np.array([[10.0, 20.0, 30.0, 120.0]]), head=0.2, margin=0.1)
    np.testing.assert_allclose(band, [[8.0, 10.0, 32.0, 50.0]])  # width 20, height 100
    with pytest.raises(ValueError, match="head must be a fraction"):
        head_bands(np.zeros((1, 4)), head=0.0, margin=0.1)


def test_redact_window_drops_exactly_the_events_in_any_band() -> None:
    ev = _grid_events(0, 33_333)
    boxes = np.array([[0.0, 0.0, 20.0, 50.0], [25.0, 10.0, 35.0, 60.0]], np.float32)
    kept = redact_window(ev, boxes, head=0.2, margin=0.0)
    gone = np.ones(len(ev), bool)
    gone &= ~(((ev["x"] < 20) & (ev["y"] < 10)) | ((ev["x"] >= 25) & (ev["x"] < 35) & (ev["y"] >= 10) & (ev["y"] < 20)))
    np.testing.assert_array_equal(kept, ev[gone])
    assert len(redact_window(ev, np.zeros((0, 4)), 0.2, 0.1)) == len(ev)  # no person: nothing to redact


def _people(*people: tuple[int, int, int, int]) -> np.ndarray:
    """Events on every pixel of each ``(x1, y1, x2, y2)`` person rectangle, spread over a window, a third
    of them OFF."""
    parts = []
    for x1, y1, x2, y2 in people:
        ys, xs = np.mgrid[y1:y2, x1:x2]
        parts.append(make_events(np.linspace(0, 33_332, xs.size).astype(np.int64), xs.ravel(), ys.ravel(),
                                 np.where(np.arange(xs.size) % 3, 1, -1).astype(np.int8)))
    return np.concatenate(parts)


#: two people side by side, 20 x 50 each, the short one 20 px lower; a box spanning both (50 x 70: 0.71
#: as wide as high, a box of one person is 0.29-0.71) has the tall one's top
TALL, SHORT, BOTH = (10, 10, 30, 60), (40, 30, 60, 80), (10.0, 10.0, 60.0, 80.0)
SHORT_HEAD = (slice(30, 40), slice(40, 60))  # rows, columns: the top 0.15 of the box's height below its top


def test_a_box_too_wide_for_one_person_also_redacts_below_each_columns_top() -> None:
    """A box spanning two people has the taller one's top, so its band passes over the shorter one's head;
    with ``columns_min_aspect`` the band of such a box follows each column's topmost event too. A box of
    one person (narrower than the aspect) is redacted as before, and None turns the column rule off."""
    ev = _people(TALL, SHORT)
    wide = np.array([BOTH], np.float32)
    short_head = (ev["x"] >= 40) & (ev["y"] >= 30) & (ev["y"] < 40)
    plain = redact_window(ev, wide, head=0.15, margin=0.0)  # the band: y < 10 + 0.15 * 70
    assert len(plain) == len(redact_window(ev, wide, 0.15, 0.0, columns_min_aspect=None)) == len(ev) - 20 * 11
    assert np.isin(ev[short_head], plain).all()  # the band misses the short one's head
    cols = redact_window(ev, wide, head=0.15, margin=0.0, columns_min_aspect=0.6)
    assert not np.isin(ev[short_head], cols).any()
    # nothing more goes: each person loses the rows from its own top to 0.15 of the box height below it
    assert len(cols) == len(ev) - 2 * 20 * 11 and np.isin(ev[(ev["x"] >= 40) & (ev["y"] >= 41)], cols).all()
    # a one-person box is narrower than the aspect: the column rule leaves it alone
    one = np.array([SHORT], np.float32)
    np.testing.assert_array_equal(redact_window(ev, one, 0.15, 0.05, columns_min_aspect=0.6),
                                  redact_window(ev, one, 0.15, 0.05))
    with pytest.raises(ValueError, match="columns_min_aspect must be >= 0"):
        redact_window(ev, wide, 0.15, 0.0, columns_min_aspect=-1.0)


def test_a_lone_event_above_a_head_does_not_lift_the_column_band() -> None:
    """Background activity: single events above the short person's head (and beside it, within the tops'
    reach) are not a top; a column's top is its highest event with neighbours (column_tops), so the band
    still covers the short one's head. Without that support rule the band would start at the lone events."""
    from anonreid.events.redaction import column_tops

    noise = make_events(np.array([100, 200, 300], np.int64), np.array([45, 52, 38]), np.array([22, 25, 24]),
                        np.ones(3, np.int8))
    ev = np.concatenate([_people(TALL, SHORT), noise])
    short_head = (ev["x"] >= 40) & (ev["y"] >= 30) & (ev["y"] < 40)
    cols = redact_window(ev, np.array([BOTH], np.float32), head=0.15, margin=0.0, columns_min_aspect=0.6)
    assert not np.isin(ev[short_head], cols).any()
    assert np.isin(noise, cols).all()  # above every band: kept
    # the tops themselves: lone events (1, 0) and (3, 9) are skipped; (1, 5), (2, 5), (2, 6) support each other
    x, y = np.array([1, 1, 2, 2, 3]), np.array([0, 5, 5, 6, 9])
    tops = column_tops(x, y, 0, 5)
    np.testing.assert_array_equal(tops[1:3], [5, 5])
    assert min(tops[0], tops[3], tops[4]) > 10**9
    np.testing.assert_array_equal(column_tops(x, y, 0, 5, support=1)[1:4], [0, 5, 9])
    assert column_tops(np.zeros(0, np.int64), np.zeros(0, np.int64), 0, 3).min() > 10**9


def test_the_camera_applies_the_column_rule_of_its_config() -> None:
    """The camera's voxeliser (nodes/camera/inference.py) redacts a wide box's columns with
    ``camera.redact_columns_min_aspect`` (on by default), and only the boxes' bands when it is null."""
    import dataclasses

    import torch

    from anonreid.events.types import SensorSize
    from anonreid.models.bundle import load_model_bundle
    from anonreid.nodes.camera.inference import Inference
    from anonreid.nodes.camera.windows import WindowItem
    from anonreid.orchestration.config import CameraConfig

    bundle = dataclasses.replace(load_model_bundle(), redaction=(0.15, 0.0))
    window = WindowItem(0, 0, 33_333, _people(TALL, SHORT), 0.0)

    def voxels(aspect: float | None) -> np.ndarray:
        inference = Inference(bundle, SensorSize(80, 100), torch.device("cpu"), halo_px=8, full_frame=False,
                              columns_min_aspect=aspect)
        return inference.voxelize([window], {0}, {0: [BOTH]})[0]

    assert np.abs(voxels(None)[(slice(None), *SHORT_HEAD)]).sum() > 0  # the box's band alone leaves the head
    assert np.abs(voxels(CameraConfig().redact_columns_min_aspect)[(slice(None), *SHORT_HEAD)]).sum() == 0


def test_redact_pass_uses_each_windows_own_box_and_keeps_windows_without_one() -> None:
    """Window k redacts with box k; a NaN box (person out of view) and events outside every window are kept."""
    ev = np.concatenate([_grid_events(k * 40_000, k * 40_000 + 33_333) for k in range(3)]
                        + [_grid_events(35_000, 39_000)])  # between windows 0 and 1: in no window
    ev = ev[np.argsort(ev["t"], kind="stable")]
    starts = np.array([0, 40_000, 80_000])
    boxes = np.array([[0, 0, 40, 50], [0, 10, 40, 60], [np.nan] * 4], np.float32)
    kept = redact_pass(ev, starts, 33_333, boxes, head=0.2, margin=0.0)
    for k, (y0, y1) in enumerate([(0, 10), (10, 20)]):
        w = kept[(kept["t"] >= starts[k]) & (kept["t"] < starts[k] + 33_333)]
        assert len(w) == 40 * 60 - 40 * 10 and not ((w["y"] >= y0) & (w["y"] < y1)).any()
    assert len(kept[kept["t"] >= 80_000]) == 40 * 60
    assert len(kept[(kept["t"] >= 35_000) & (kept["t"] < 40_000)]) == 40 * 60
    with pytest.raises(ValueError, match="3 windows but 2 boxes"):
        redact_pass(ev, starts, 33_333, boxes[:2], 0.2, 0.0)


def test_clips_with_redaction_have_no_events_in_the_faces(tiny_world: Path, tmp_path: Path) -> None:
    """Clips built with ``data.redact_head`` from the world's boxes jittered like a detector's: the face
    crops the evaluation cuts are empty in almost every clip, the body keeps its events. The cache keys
    them apart, and a config without redaction keys its clips as before the redaction existed. With
    ``data.redact_box_errors`` the boxes move by a camera's measured errors instead."""
    from anonreid.events.world.dataset import WorldDataset
    from anonreid.models.config import DataCfg
    from anonreid.models.data import build_clips, face_boxes

    world = WorldDataset(tiny_world)
    ids = sorted(world.identities("train"))

    def activity(redact: float, box_errors: str = "", people: int = len(ids)) -> tuple[np.ndarray, np.ndarray]:
        cfg = DataCfg(tile_hw=None, min_box_hw=(8, 4), redact_head=redact, redact_box_errors=box_errors)
        clips = build_clips(world, ids[:people], cfg, tmp_path, progress=False)
        vox, boxes = np.abs(np.asarray(clips.voxels[:, -1], np.float32)), np.asarray(clips.boxes)
        face, body = [], []
        for v, fb, b in zip(vox, face_boxes(boxes).round().astype(int).clip(0), boxes.round().astype(int), strict=True):
            face.append(v[:, fb[1] : fb[3], fb[0] : fb[2]].sum())
            body.append(v[:, (b[1] + b[3]) // 2 : b[3], b[0] : b[2]].sum())
        return np.array(face), np.array(body)

    face, body = activity(0.0)
    red_face, red_body = activity(0.2)
    assert (face > 0).mean() > 0.95  # without redaction the faces fire
    assert (red_face == 0).mean() > 0.9, (red_face == 0).mean()  # jittered boxes miss a few, not most
    assert red_body.mean() > 0.5 * body.mean()  # the legs and lower body are still there
    keys = sorted(p.read_text() for p in tmp_path.glob("*/done"))
    assert len(keys) == 2 and sum("redact" in k for k in keys) == 1
    assert not any("redact_box_errors" in k for k in keys)  # no file given: the keys of before it existed

    # boxes drawn from a camera's measured errors: a camera whose every box starts half the height below
    # the head redacts the neck, not the face; the file's content, not only its name, keys the clips
    below = tmp_path / "errors.npy"
    np.save(below, np.array([[0.0, 0.5, 0.0, 0.0]]))
    low_face, _ = activity(0.2, str(below), people=2)
    assert (low_face > 0).mean() > 0.9, (low_face > 0).mean()
    np.save(below, np.zeros((3, 4)))  # a perfect camera: the true boxes
    exact_face, _ = activity(0.2, str(below), people=2)
    assert (exact_face == 0).all()
    assert len(list(tmp_path.glob("*/done"))) == 4


def test_box_errors_move_each_box_by_a_drawn_row_and_bad_files_are_named(tmp_path: Path) -> None:
    from anonreid.models.data import load_box_errors, resample_box_errors

    boxes = np.array([[10, 20, 30, 120], [np.nan] * 4, [0, 0, 10, 50]], np.float32)
    moved = resample_box_errors(boxes, np.array([[-0.1, 0.2, 1.0, 0.0]]), np.random.default_rng(0), (100, 40))
    np.testing.assert_allclose(moved[0], [8, 40, 40, 100])  # width 20, height 100; kept on the 40 x 100 grid
    assert np.isnan(moved[1]).all() and moved.dtype == np.float32  # out of view stays out of view
    np.testing.assert_allclose(moved[2], [0, 10, 20, 50])
    rows = resample_box_errors(np.repeat(boxes[:1], 400, 0), np.array([[0, 0, 0, 0], [0, 0.1, 0, 0]]),
                               np.random.default_rng(1), (200, 200))[:, 1]
    assert set(np.unique(rows)) == {20.0, 30.0} and 150 < (rows == 30).sum() < 250  # rows drawn uniformly

    for name, content, match in (("missing.npy", None, "cannot be read"),
                                 ("flat.npy", np.zeros(4), r"\(N, 4\) box-edge errors, got shape \(4,\)"),
                                 ("nan.npy", np.array([[0, np.nan, 0, 0]]), "finite")):
        path = tmp_path / name
        if content is not None:
            np.save(path, content)
        with pytest.raises(ValueError, match=match) as info:
            load_box_errors(path)
        assert str(path) in str(info.value)


def test_the_camera_redacts_the_heads_its_detector_finds(tmp_path: Path) -> None:
    """``anonreid bench redaction``: with a head redaction the camera drops the events of the head band of
    every person it detects or tracks before voxelising, so in the live world the true face boxes of the
    windows it voxelises are empty, where the same windows without redaction fire."""
    from typer.testing import CliRunner

    from anonreid.orchestration.cli import app

    out = tmp_path / "redaction.json"
    res = CliRunner().invoke(app, ["bench", "redaction", "--cameras", "cam3", "--seconds", "2", "--json", str(out),
                                   "--clip-jitter", "0", "--save-errors", str(tmp_path / "errors.npy"), "--set", "camera.torch_threads=1", "--set", "camera.embed_every=2"])
    assert res.exit_code == 0, res.output
    r = json.loads(out.read_text())
    assert r["faces"] >= 10 and r["firing_without_redaction"] >= 0.9 * r["faces"], r
    assert r["firing_faces_fully_redacted"] >= 0.85 * r["firing_without_redaction"], r
    assert r["faces_over_25pct_left"] == 0 and r["cameras"][0]["face_pixels_left_of_firing"] < 0.05, r
    assert r["cameras"][0]["heavy_leaks"] == [] and r["heavy_leaks_without_a_box"] == 0, r
    assert [c["camera"] for c in r["cameras"]] == ["cam3"] and (r["head"], r["margin"]) == (0.2, 0.1)
    # the leaks are told apart by whether the camera boxed the person; the clips' boxes, here unjittered
    # (the true boxes), cover every firing face and have no edge error
    assert r["leaking_faces_with_a_box"] + r["leaking_faces_without_a_box"] == (
        r["firing_without_redaction"] - r["firing_faces_fully_redacted"]), r
    assert r["clip_boxes"]["firing_faces_fully_redacted"] == r["firing_without_redaction"], r
    errors = r["box_errors"]
    assert errors["camera_boxes"] >= 0.9 * r["faces"] and errors["clips"]["top"] == [0.0] * 5, errors
    # the camera's boxes are the detector's: not the truth, but close to it
    assert 0 < max(abs(q) for edge in errors["camera"].values() for q in edge) < 0.5, errors
    # the camera's errors, saved for data.redact_box_errors: one row per camera box, the summary's quantiles
    from anonreid.models.data import load_box_errors
    saved = load_box_errors(tmp_path / "errors.npy")
    assert len(saved) == errors["camera_boxes"]
    assert np.allclose(np.quantile(saved[:, 1], 0.5), errors["camera"]["top"][2], atol=1e-4)


def test_box_edge_errors_are_fractions_of_the_true_size() -> None:
    """A box 10 % of the true width to the left and 20 % of the true height taller at the top."""
    from anonreid.models.data import edge_errors, resample_box_errors
    from anonreid.orchestration.bench.redaction import error_summary

    e = edge_errors(np.array([[8, 60, 28, 200]]), np.array([[10, 80, 30, 180]]))
    assert np.allclose(e, [[-0.1, -0.2, -0.1, 0.2]])
    assert error_summary(e)["top"] == [-0.2] * 5 and error_summary(np.zeros((0, 4)))["left"] == []
    # resampling applies what edge_errors measures
    np.testing.assert_allclose(resample_box_errors(np.array([[10, 80, 30, 180]]), e, np.random.default_rng(0), (300, 300)),
                               [[8, 60, 28, 200]])


def test_a_heavy_leak_names_its_window_and_the_box_the_camera_had() -> None:
    """Each face the redaction leaves over a quarter firing is listed with the camera box that overlapped
    its person most (its aspect, which decides the column rule, and its edge errors), or None for a
    person the camera missed."""
    from anonreid.orchestration.bench.redaction import heavy_leak

    truth = np.array([10.0, 80.0, 30.0, 180.0])
    leak = heavy_leak(5_000, truth, np.array([8.0, 60.0, 28.0, 200.0]), 0.62, 0.4, 0.3)
    assert leak["window_start_us"] == 5_000 and leak["camera_box"] == [8.0, 60.0, 28.0, 200.0]
    assert leak["aspect"] == round(20 / 140, 3) and leak["edge_errors"] == [-0.1, -0.2, -0.1, 0.2]
    assert (leak["iou"], leak["face_firing_without"], leak["face_left"]) == (0.62, 0.4, 0.3)
    missed = heavy_leak(5_000, truth, None, 0.0, 0.4, 0.4)
    assert missed["camera_box"] is None and missed["aspect"] is None and missed["edge_errors"] is None
    json.dumps([leak, missed])  # the bench writes them as they are


def test_the_bundle_reads_the_redaction_its_anonymizer_records(tmp_path: Path) -> None:
    from anonreid.models.bundle import REDACTION_KEY, load_model_bundle
    from anonreid.models.checkpoint import CheckpointError, save_checkpoint
    from anonreid.models.registry import create_model

    ckpt = tmp_path / "checkpoints"
    save_checkpoint(ckpt / "reid", create_model("reid_resnet18", embed_dim=16), {})
    save_checkpoint(ckpt / "anonymizer", create_model("anonymizer_paper"), {})
    assert load_model_bundle(tmp_path).redaction is None
    save_checkpoint(ckpt / "anonymizer", create_model("anonymizer_paper"), {REDACTION_KEY: {"head": 0.2, "margin": 0.1}})
    assert load_model_bundle(tmp_path).redaction == (0.2, 0.1)
    save_checkpoint(ckpt / "anonymizer", create_model("anonymizer_paper"), {REDACTION_KEY: {"head": 0.2}})
    with pytest.raises(CheckpointError, match=rf"anonymizer\.json: metadata\.{REDACTION_KEY} must be"):
        load_model_bundle(tmp_path)


def test_the_shipped_set_redacts_the_head_band_and_ships_its_attackers() -> None:
    """models/weights/default (the narrow band's set, shipped since the 39th session): the cameras that
    run it redact as its anonymizer was trained (head 0.15, margin 0.05), its ReId was fine-tuned behind
    that anonymizer and that redaction (on 580 people since the 46th session), and the adversary finds
    every attacker the set carries trained against it (the raw E_rec, the adaptive E_rec, the raw E_rec
    fine-tuned on its output, the linear inverse and the end-to-end inversion, the appearance net). The set
    shipped before it is kept, unredacted, in models/weights/previous_default."""
    import json

    from anonreid.models.bundle import DEFAULT_WEIGHTS, load_model_bundle
    from anonreid.nodes.adversary.attackers import load_attackers

    bundle = load_model_bundle()
    assert bundle.redaction == (0.15, 0.05)
    names = ("anonymizer", "reid", "e_lin", "e_rec_adaptive")
    meta = {n: json.loads((DEFAULT_WEIGHTS / f"{n}.json").read_text())["metadata"] for n in names}
    assert [meta[n]["stage"] for n in names] == ["joint", "reid_anon", "linear", "adaptive"]
    # the attacks on the anonymizer's world; the ReId (46th session) on a wider one, behind the same anonymizer
    assert len({meta[n]["data_fingerprint"] for n in names if n != "reid"}) == 1
    assert meta["reid"]["data_fingerprint"] != meta["anonymizer"]["data_fingerprint"]
    assert "580 training people" in meta["reid"]["note"]
    reid_data = meta["reid"]["config"]["data"]
    assert (reid_data["redact_head"], reid_data["redact_margin"]) == bundle.redaction == (0.15, 0.05)
    assert all(m["reproduce"].startswith("anonreid simulate") for m in meta.values())
    attackers = load_attackers(DEFAULT_WEIGHTS)
    assert attackers.side is not None and attackers.side.e_lin is not None and attackers.appearance is not None
    assert attackers.side.e_rec_adaptive is not None
    assert load_model_bundle(PREVIOUS_WEIGHTS).redaction is None
    assert attackers.side.e_inv is not None and attackers.missing == []  # every attack the shipped set carries
    e_inv = json.loads((DEFAULT_WEIGHTS / "e_inv.json").read_text())["metadata"]
    assert e_inv["stage"] == "inv" and e_inv["budget_rule"]["ok"] and e_inv["appearance_loss"]
    # retrained in the 42nd session with the fix for the flat-grey collapse: the loss on the person region,
    # starting from the closed-form linear inverse (the floor it must beat)
    assert e_inv["config"]["inv"]["region"] == "person" and e_inv["config"]["inv"]["init"] == "linear"
    assert e_inv["started_from"].startswith("the linear inverse")
    # the raw E_rec fine-tuned on the output (41st session): from the shipped raw E_rec, 3x the in-loop budget
    assert attackers.side.e_rec_finetuned is not None
    finetuned = json.loads((DEFAULT_WEIGHTS / "e_rec_finetuned.json").read_text())["metadata"]
    assert finetuned["stage"] == "finetune" and finetuned["budget_rule"]["ok"]
    assert finetuned["budget"]["init_from"] == "e_rec" and finetuned["budget"]["samples"] >= 9600
