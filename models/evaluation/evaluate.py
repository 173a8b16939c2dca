"""``anonreid evaluate``: the paper's tables, reproduced on a trained run, plus the attacks it did not run.

Test data are the clips of the world's *test* identities (or of Event-ReId's official test split),
built exactly as training builds its clips (:func:`anonreid.models.data.build_clips`, the run's data
config: sensor-scale tiles around the person, ``clip_len`` consecutive 33.3 ms windows), at most
``clips_per_pass`` evenly spaced clips per pass. E_rec unrolls over each clip from a zero state; the
last window of each clip gives the ReId crop (ground-truth box, and separately the box of the event
activity detector :mod:`anonreid.nodes.detection`), the reconstruction crops for the retrieval attack
and the face crops.

Tables (``results.json`` + ``results.md`` + PNG figures in OUT_DIR):
  2  SSIM / PSNR of E_rec's reconstructions vs reference frames, raw vs anonymized events
  3  no privacy vs chaotic scrambling vs chaotic discarding (75% of events; Du et al. 2021, keys in
     :mod:`anonreid.events.encryption`) vs anonymization: SSIM, PSNR, ReId rank-1, retrieval rank-1
  4  ReId rank-1/5/10 and mAP, raw vs anonymized (Market-1501; query = one clip per identity and camera)
  5  the loss ablation (runs of ``anonreid train --ablation``), "missing" for settings not trained
  6  the inversion attack: retrieval rank-1/5/10 and mAP on E_rec(E_inv(E_an(X)))
  7  the adaptive attacker (E_rec retrained on anonymized events): SSIM, PSNR, retrieval rank-1
  8  face verification: ROC AUC of reference frames, raw and anonymized reconstructions
Every attacker number has its chance level (or floor) beside it and a 95% bootstrap interval over
identities; the paper's numbers (Event-ReId, real data) are printed beside ours.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from anonreid.models.engine import seed_everything
from anonreid.models.evaluation.attacks import (
    ATTACK_VIEWS,
    DEFAULT_HEAD_RATIO,
    AttackerCfg,
    AttackerSide,
    FaceScore,
    RetrievalScore,
    attacker_views,
    embed,
    face_boxes,
    face_verification_attack,
    image_crops,
    load_attacker_net,
    load_attacker_side,
    load_face_embedder,
    one_per_identity_camera,
    photo_person_box,
    reconstruct,
    reconstruction_attack,
    retrieval_attack,
    retrieval_scores,
    train_attacker_net,
)
from anonreid.models.evaluation.protocol import evaluation_protocol
from anonreid.models.evaluation.strong_attacks import attack_results, identity_attack, with_attacks_section

log = logging.getLogger(__name__)

#: the paper's numbers on Event-ReId (Ahmad et al., ICCV 2023), printed beside ours
PAPER = {
    "ssim": {"raw": 0.548, "anonymized": 0.384},
    "psnr": {"raw": 11.6, "anonymized": 8.9},
    "reid_rank1": {"raw": 63.7, "anonymized": 59.2},
    "reid_mAP": {"raw": 40.7, "anonymized": 36.1},
    "retrieval_rank1": {"raw": 67.8, "anonymized": 8.9},
    "inversion_rank1": 9.1,
    "face_auc": {"anonymized": 0.53},
}
RUN_MODELS = ("reid_raw", "anonymizer", "reid")  # the attacker side: attacks.load_attacker_side
ENROLLMENT_CAMERA = "enrollment"


@dataclass
class EvalOptions:
    clips_per_pass: int = 8
    attacker: AttackerCfg | None = None  # None: AttackerCfg.for_preset(the run's preset)
    face_weights: Path | None = None  # a TorchScript ArcFace; default: the attacker's own face net
    encryption: bool = True
    detection: bool = True
    seed: int = 0
    progress: bool = True
    time_unit: str | None = None  # Event-ReId files: their time unit (None: inferred, with a warning)
    sensor: str = ""  # Event-ReId chunk files: WxH
    verdict: bool = True  # False (--no-verdict): the numbers without privacy verdicts, even on seen identities
    train_data: Path | None = None  # the world the run trained on, when it is not the evaluated one


@dataclass
class TestSet:
    """The evaluation clips and what the attacker may hold about the test identities."""

    name: str
    clips: Any  # anonreid.models.data.ClipSet
    ids: np.ndarray  # identity string per clip
    cams: np.ndarray  # camera string per clip
    has_reference: bool  # reference frames exist (the world; not Event-ReId's events.txt layout)
    enrollment: dict[str, np.ndarray]  # identity -> photo (empty when none)
    head_ratio: dict[str, float]
    dataset: Any
    data_cfg: Any
    fingerprint: str
    cache: Path
    clips_per_pass: int
    query: np.ndarray | None = None  # per clip: an official query (Event-ReId lists); None: one per id+camera
    gallery: np.ndarray | None = None  # per clip: in the official gallery; None: every clip


# ---------------------------------------------------------------------------------------------- datasets


def _camera_names(dataset: Any, clips: Any) -> np.ndarray:
    return np.asarray([dataset.passes[int(i)].camera for i in clips.passes])


def open_test_set(
    dataset: str, data_dir: Path | None, root: Path | None, data_cfg: Any, cache: Path, clips_per_pass: int,
    progress: bool, time_unit: str | None = None, sensor: str = "",
) -> TestSet:
    """The test clips of the world (``dataset="world"``, ``data_dir``) or of Event-ReId (``root``, either
    layout of :mod:`anonreid.events.event_reid_dataset`: single-window clips, as the authors evaluate;
    the official query and gallery lists when the root has them)."""
    from anonreid.models.data import build_clips, dataset_fingerprint

    query = gallery = None

    if dataset == "world":
        from anonreid.events.world import WorldDataset

        if data_dir is None:
            raise ValueError("--data is required for --dataset world")
        ds: Any = WorldDataset(data_dir)
        fingerprint = dataset_fingerprint(data_dir)
        ids = ds.identities("test")
        enrollment = {i: ds.enrollment(i) for i in ids}
        head = {p["identity"]: float(p.get("head_ratio", DEFAULT_HEAD_RATIO)) for p in ds.meta["identities"]}
        has_reference = True
    elif dataset == "event-reid":
        if root is None:
            raise ValueError("--root is required for --dataset event-reid")
        from anonreid.events.event_reid_dataset import OFFICIAL_EVERY, open_event_reid_dataset
        from anonreid.events.types import SensorSize

        ds = open_event_reid_dataset(root, "test", time_unit, SensorSize.parse(sensor) if sensor else None,
                                     data_cfg.window_us)
        fingerprint = f"event-reid:{root.resolve()}:{ds.layout}:{ds.time_unit}:{ds.sensor}"
        ids, enrollment, head, has_reference = ds.identities(), {}, {}, False
        data_cfg = data_cfg.model_copy(update={"clip_len": 1, "clip_stride": 1 if ds.layout == "lists" else OFFICIAL_EVERY})
    else:
        raise ValueError(f"--dataset must be 'world' or 'event-reid', got {dataset!r}")
    clips = build_clips(ds, ids, data_cfg, cache, fingerprint, max_clips_per_pass=clips_per_pass, progress=progress)
    clip_ids = np.asarray([clips.identities[int(i)] for i in clips.labels])
    if dataset == "event-reid" and ds.layout == "lists":
        roles = np.asarray([ds.passes[int(i)].split for i in clips.passes])
        query, gallery = roles == "query", roles == "gallery"
    return TestSet(dataset, clips, clip_ids, _camera_names(ds, clips), has_reference, enrollment, head, ds, data_cfg,
                   fingerprint, cache, clips_per_pass, query, gallery)


def detected_boxes(test: TestSet, min_iou: float = 0.3) -> np.ndarray:
    """The event-activity detector's box (tile coordinates) for the last window of every clip: the
    detection overlapping the ground-truth box most (IoU >= ``min_iou``), NaN where it found none.

    The detector runs over every window of the pass from its start, as the camera node runs it.
    """
    from anonreid.models.data import _select_clips, _tile_origin
    from anonreid.nodes.detection import ActivityDetector, box_iou

    cfg = test.data_cfg.model_copy(update={"max_clips_per_pass": test.clips_per_pass})
    out = np.full((len(test.clips), 4), np.nan, np.float32)
    th, tw = cfg.tile_hw if cfg.tile_hw is not None else (test.dataset.sensor.height, test.dataset.sensor.width)
    for pass_idx in np.unique(test.clips.passes):
        members = np.flatnonzero(test.clips.passes == pass_idx)
        data = test.dataset.load_pass(test.dataset.passes[int(pass_idx)].pass_id)
        starts = _select_clips(np.asarray(data.boxes, np.float32), cfg)
        if len(starts) != len(members):
            raise RuntimeError(f"pass {pass_idx}: {len(starts)} clip starts recomputed, {len(members)} clips built")
        wanted = {k + cfg.clip_len - 1: int(m) for k, m in zip(starts, members, strict=True)}
        bounds = np.r_[data.frame_ts, data.frame_ts[-1] + cfg.window_us]
        edges = np.asarray(np.searchsorted(data.events["t"], bounds), np.int64)
        detector = ActivityDetector(data.sensor)
        for k in range(max(wanted) + 1):
            dets = detector.update(data.events[edges[k] : edges[k + 1]])
            if k not in wanted or not dets:
                continue
            gt = data.boxes[k]
            iou = box_iou(np.array([d.box for d in dets]), gt[None])[:, 0]
            if iou.max() < min_iou:
                continue
            y0 = _tile_origin((gt[1] + gt[3]) / 2, th, data.sensor.height)
            x0 = _tile_origin((gt[0] + gt[2]) / 2, tw, data.sensor.width)
            out[wanted[k]] = np.asarray(dets[int(iou.argmax())].box, np.float32) - np.array([x0, y0, x0, y0], np.float32)
    return out


# ------------------------------------------------------------------------------------------------ models


def load_run_models(run_dir: Path, device: torch.device) -> dict[str, nn.Module | None]:
    """The run's ReId and anonymizer checkpoints (``None`` for those its stages did not produce)."""
    from anonreid.models.checkpoint import load_checkpoint

    out: dict[str, nn.Module | None] = {}
    for name in RUN_MODELS:
        path = run_dir / "checkpoints" / name
        out[name] = load_checkpoint(path, device=device).model.eval() if path.with_suffix(".json").exists() else None
    return out


def _model_versions(run_dir: Path) -> dict[str, Any]:
    from anonreid.models.checkpoint import read_sidecar

    out = {}
    for path in sorted((run_dir / "checkpoints").glob("*.json")):
        meta = read_sidecar(path)["metadata"]
        out[path.stem] = {"created": meta.get("created"), "code_version": meta.get("code_version"),
                          "data_fingerprint": meta.get("data_fingerprint"), "stage": meta.get("stage")}
    return out


@torch.no_grad()
def reid_embeddings(reid: nn.Module, tiles: np.ndarray, boxes: np.ndarray, crop_hw: tuple[int, int], batch: int = 64) -> np.ndarray:
    """E_reid embeddings of box crops of voxel tiles ``(N, B, h, w)``; rows whose box is NaN are NaN."""
    from anonreid.models.data import crop_boxes
    from anonreid.models.registry import model_cfg

    out = np.full((len(tiles), int(model_cfg(reid).embed_dim or 0)), np.nan, np.float32)
    ok = np.flatnonzero(np.isfinite(boxes).all(1))
    device = next(reid.parameters()).device
    for i in range(0, len(ok), batch):
        idx = ok[i : i + batch]
        x = torch.from_numpy(np.array(tiles[idx], np.float32))
        crops = crop_boxes(x, torch.from_numpy(np.array(boxes[idx], np.float32)), crop_hw).to(device)
        out[idx] = reid(crops).float().cpu().numpy()
    return out


def reid_table(
    emb: np.ndarray, ids: np.ndarray, cams: np.ndarray, seed: int,
    query: np.ndarray | None = None, gallery: np.ndarray | None = None,
) -> RetrievalScore:
    """Market-1501: one query per (identity, camera), the gallery every clip (same id+camera excluded);
    or the official ``query`` and ``gallery`` clips (boolean masks) where the dataset lists them."""
    found = np.isfinite(emb).all(1)
    if query is not None and gallery is not None:
        q, g = np.flatnonzero(found & query), np.flatnonzero(found & gallery)
    else:
        g = np.flatnonzero(found)
        q = g[one_per_identity_camera(ids[g], cams[g])]
    return retrieval_scores(emb[q], ids[q], cams[q], emb[g], ids[g], cams[g], seed=seed)


# --------------------------------------------------------------------------------------- attacker networks


def attacker_networks(
    run_dir: Path, data_dir: Path | None, run_cfg: Any, acfg: AttackerCfg, device: torch.device, progress: bool = True,
) -> tuple[nn.Module | None, nn.Module | None]:
    """The attacker's appearance ReId and face nets from ``RUN_DIR/attacker/``, trained there first when
    missing (on the world's *training* identities: reference-frame crops and enrollment photos)."""
    from anonreid.models.data import build_clips, dataset_fingerprint, split_identities

    out_dir = run_dir / "attacker"
    fingerprint = dataset_fingerprint(data_dir) if data_dir is not None else None
    app = load_attacker_net(out_dir, acfg.appearance, device, fingerprint)
    face = load_attacker_net(out_dir, acfg.face, device, fingerprint)
    if app is not None and face is not None:
        return app, face
    if data_dir is None or fingerprint is None:
        log.warning("no attacker nets under %s and no world (--data) to train them on", out_dir)
        return app, face
    from anonreid.events.world import WorldDataset

    ds = WorldDataset(data_dir)
    train_ids, _ = split_identities(ds, run_cfg.data)
    clips = build_clips(ds, train_ids, run_cfg.data, run_dir / "cache", fingerprint, progress=progress)
    head = {p["identity"]: float(p.get("head_ratio", DEFAULT_HEAD_RATIO)) for p in ds.meta["identities"]}
    photos = [ds.enrollment(i) for i in clips.identities]
    photo_boxes = np.stack([photo_person_box(p) for p in photos])
    frames, boxes = np.asarray(clips.frames[:, -1]), np.asarray(clips.boxes)
    labels = np.r_[np.asarray(clips.labels), np.arange(len(photos))]
    ratios = np.asarray([head[clips.identities[int(i)]] for i in labels], np.float32)
    meta = {"data_fingerprint": fingerprint, "trained_on": "reference frames + enrollment photos of the training identities"}
    if app is None:
        hw = acfg.appearance.crop_hw
        crops = torch.cat([image_crops(frames, boxes, hw), _photo_crops(photos, photo_boxes, hw)])
        app = train_attacker_net(crops, labels, acfg.appearance, out_dir, device, progress, meta)
    if face is None:
        hw = acfg.face.crop_hw
        n = len(frames)
        crops = torch.cat([image_crops(frames, face_boxes(boxes, ratios[:n]), hw),
                           _photo_crops(photos, face_boxes(photo_boxes, ratios[n:]), hw)])
        face = train_attacker_net(crops, labels, acfg.face, out_dir, device, progress, meta)
    return app, face


def _photo_crops(photos: Sequence[np.ndarray], boxes: np.ndarray, hw: tuple[int, int]) -> torch.Tensor:
    if not len(photos):
        return torch.zeros((0, 1, *hw))
    return torch.cat([image_crops(p[None], b[None], hw) for p, b in zip(photos, boxes, strict=True)])


# ------------------------------------------------------------------------------------------------ attacks


@dataclass
class Attacks:
    """The test set seen by the attacker: enrollment queries, per-view gallery crops, face crops."""

    test: TestSet
    app: nn.Module | None
    face: nn.Module | Any | None
    app_hw: tuple[int, int]
    face_hw: tuple[int, int]
    seed: int
    enroll_ids: np.ndarray = field(init=False)
    enroll_app: torch.Tensor = field(init=False)
    enroll_face: torch.Tensor = field(init=False)

    def __post_init__(self) -> None:
        ids = sorted(self.test.enrollment)
        photos = [self.test.enrollment[i] for i in ids]
        boxes = np.stack([photo_person_box(p) for p in photos]) if photos else np.zeros((0, 4), np.float32)
        self.enroll_ids = np.asarray(ids)
        self.enroll_app = _photo_crops(photos, boxes, self.app_hw)
        ratios = np.asarray([self.test.head_ratio.get(i, DEFAULT_HEAD_RATIO) for i in ids], np.float32)
        self.enroll_face = _photo_crops(photos, face_boxes(boxes, ratios), self.face_hw)

    def gallery(self, frames: np.ndarray) -> torch.Tensor:
        """Person crops of the last window of each clip's frames ``(N, T, h, w)``."""
        return image_crops(frames[:, -1], np.asarray(self.test.clips.boxes), self.app_hw)

    def retrieval(self, gallery_frames: np.ndarray, query_frames: np.ndarray | None = None) -> RetrievalScore | None:
        """Enrollment photos (``query_frames`` None) or one crop per identity and camera of
        ``query_frames`` against crops of ``gallery_frames``."""
        if self.app is None:
            return None
        ids, cams = self.test.ids, self.test.cams
        if query_frames is None:
            if not len(self.enroll_ids):
                return None
            q, q_ids, q_cams = self.enroll_app, self.enroll_ids, np.full(len(self.enroll_ids), ENROLLMENT_CAMERA)
        else:
            sel = one_per_identity_camera(ids, cams)
            q, q_ids, q_cams = self.gallery(query_frames)[sel], ids[sel], cams[sel]
        return retrieval_attack(self.app, q, q_ids, q_cams, self.gallery(gallery_frames), ids, cams, seed=self.seed)

    def face_verification(self, frames: np.ndarray) -> FaceScore | None:
        if self.face is None or len(self.enroll_ids) < 2:  # no impostor pairs with one identity
            return None
        ratios = np.asarray([self.test.head_ratio.get(i, DEFAULT_HEAD_RATIO) for i in self.test.ids], np.float32)
        probes = image_crops(frames[:, -1], face_boxes(np.asarray(self.test.clips.boxes), ratios), self.face_hw)
        own = isinstance(self.face, nn.Module)
        return face_verification_attack(embed(self.face, probes, normalise=own), self.test.ids,
                                        embed(self.face, self.enroll_face, normalise=own), self.enroll_ids, seed=self.seed)


def _reference(test: TestSet) -> np.ndarray:
    return np.asarray(test.clips.frames, np.float32) / 255.0


def _as(x: Any) -> Any:
    return None if x is None else x.as_dict()


def encryption_rows(
    test: TestSet, e_rec: nn.Module, reid_raw: nn.Module | None, attacks: Attacks, crop_hw: tuple[int, int],
    seed: int, progress: bool,
) -> dict[str, Any]:
    """Table 3's encryption baselines: the clips rebuilt from encrypted events, attacked like raw ones."""
    from anonreid.events.encryption import ChaoticDiscard, ChaoticScramble
    from anonreid.models.data import build_clips

    rows: dict[str, Any] = {}
    ids = sorted(set(test.ids.tolist()))
    for name, transform in (("scrambling", ChaoticScramble(test.dataset.sensor)), ("discarding", ChaoticDiscard())):
        clips = build_clips(test.dataset, ids, test.data_cfg, test.cache, test.fingerprint,
                            max_clips_per_pass=test.clips_per_pass, progress=progress,
                            event_transform=transform)
        if len(clips) != len(test.clips):
            raise RuntimeError(f"{name}: {len(clips)} clips rebuilt from encrypted events, {len(test.clips)} expected")
        frames = reconstruct(e_rec, clips.voxels)
        row: dict[str, Any] = {"transform": repr(transform)}
        if test.has_reference:
            row["reconstruction"] = reconstruction_attack(frames, _reference(test), test.ids, seed).as_dict()
        if reid_raw is not None:
            emb = reid_embeddings(reid_raw, clips.voxels[:, -1], np.asarray(clips.boxes), crop_hw)
            row["reid"] = reid_table(emb, test.ids, test.cams, seed, test.query, test.gallery).as_dict()
        row["retrieval"] = _as(attacks.retrieval(frames))
        rows[name] = row
    return rows


def ablation_rows(
    run_dir: Path, run_cfg: Any, test: TestSet, attacker: AttackerSide, attacks: Attacks, crop_hw: tuple[int, int],
    seed: int,
) -> dict[str, Any]:
    """Table 5: every ``--ablation`` setting of the run's config, evaluated like the main model."""
    from anonreid.models.checkpoint import load_checkpoint

    rows: dict[str, Any] = {}
    for w in run_cfg.ablation.settings:
        tag = "a{:g}_b{:g}_g{:g}".format(*w)
        ckpt = run_dir / "ablation" / tag / "checkpoints"
        row: dict[str, Any] = {"alpha": w[0], "beta": w[1], "gamma": w[2]}
        if not (ckpt / "anonymizer.json").exists() or not (ckpt / "reid.json").exists():
            rows[tag] = {**row, "missing": f"{ckpt} not found (run `anonreid train --ablation`)"}
            continue
        dev = next(attacker.e_rec.parameters()).device
        anonymizer = load_checkpoint(ckpt / "anonymizer", device=dev).model.eval()
        reid = load_checkpoint(ckpt / "reid", device=dev).model.eval()
        views, anon_last = attacker_views(test.clips.voxels, AttackerSide(attacker.e_rec), anonymizer, raw=False)
        assert anon_last is not None
        if test.has_reference:
            row["reconstruction"] = reconstruction_attack(views["anonymized"], _reference(test), test.ids, seed).as_dict()
        row["reid"] = reid_table(reid_embeddings(reid, anon_last, np.asarray(test.clips.boxes), crop_hw),
                                 test.ids, test.cams, seed, test.query, test.gallery).as_dict()
        row["retrieval"] = _as(attacks.retrieval(views["anonymized"]))
        rows[tag] = row
    return rows


# ------------------------------------------------------------------------------------------------- driver


def evaluate_run(
    run_dir: str | Path | None, out_dir: str | Path, data_dir: str | Path | None = None, dataset: str = "world",
    root: str | Path | None = None, opts: EvalOptions | None = None, command: str = "",
) -> dict[str, Any]:
    """Evaluate a training run, or a shipped model set (``None``: the package's default); writes
    ``results.json``, ``results.md`` and figures to ``out_dir``."""
    from anonreid.models.config import load_train_config
    from anonreid.models.engine import resolve_device

    opts = opts or EvalOptions()
    t_start = time.perf_counter()
    from anonreid.models.bundle import run_view

    out_dir = Path(out_dir)
    run_dir = run_view(run_dir, out_dir)  # a run directory, or a view of a shipped model set (the default's)
    data_path = Path(data_dir) if data_dir is not None else None
    run_cfg = load_train_config(run_dir / "config.yaml")
    protocol = evaluation_protocol(run_dir, run_cfg, dataset, data_path, opts.verdict, opts.train_data)  # first
    if run_cfg.threads:
        torch.set_num_threads(run_cfg.threads)
    device = resolve_device(run_cfg.device)
    models = load_run_models(run_dir, device)
    if opts.attacker is None:
        opts = replace(opts, attacker=AttackerCfg.for_preset(run_cfg.name))
    assert opts.attacker is not None
    attacker = load_attacker_side(run_dir, device)
    e_rec = attacker.e_rec
    out_dir.mkdir(parents=True, exist_ok=True)
    crop_hw = (run_cfg.data.crop_hw[0], run_cfg.data.crop_hw[1])
    test = open_test_set(dataset, data_path, Path(root) if root else None, run_cfg.data, run_dir / "cache" / "eval",
                         opts.clips_per_pass, opts.progress, opts.time_unit, opts.sensor)
    log.info("evaluating %d clips of %d identities", len(test.clips), len(set(test.ids.tolist())))

    seed_everything(opts.seed)  # a stochastic anonymizer (anonymizer_noisy) draws its noise from torch's RNG
    views, anon_last = attacker_views(test.clips.voxels, attacker, models["anonymizer"])
    app, face_net = attacker_networks(run_dir, data_path, run_cfg, opts.attacker, device, opts.progress)
    face: Any = load_face_embedder(opts.face_weights) if opts.face_weights else face_net
    attacks = Attacks(test, app, face, opts.attacker.appearance.crop_hw, opts.attacker.face.crop_hw, opts.seed)
    seed = opts.seed

    res: dict[str, Any] = {
        "command": command, "run_dir": str(run_dir), "dataset": dataset, "data": str(data_path or root),
        "preset": run_cfg.name, "device": str(device), "models": _model_versions(run_dir),
        "joint": {"alpha": run_cfg.joint.alpha, "beta": run_cfg.joint.beta, "gamma": run_cfg.joint.gamma,
                  "minmax": run_cfg.joint.minmax.enabled},  # the loss weights (beta: the frontier's knob)
        "test": {"clips": len(test.clips), "identities": len(set(test.ids.tolist())),
                 "cameras": sorted(set(test.cams.tolist())), "clips_per_pass": opts.clips_per_pass,
                 "clip_len": test.data_cfg.clip_len, "tile_hw": list(run_cfg.data.tile_hw or []),
                 "reference_frames": test.has_reference,
                 "reid_protocol": "query and gallery = the official query_list.txt and gallery_list.txt"
                 if test.query is not None else "query = one clip per identity and camera"},
        "attacker": {"appearance": opts.attacker.appearance.__dict__, "face": opts.attacker.face.__dict__,
                     "face_embedder": str(opts.face_weights) if opts.face_weights else "attacker's own face net"},
        "paper": PAPER,
    }
    reference = _reference(test) if test.has_reference else None
    # Table 2 (+ the inversion / adaptive reconstructions)
    res["reconstruction"] = (
        {v: reconstruction_attack(f, reference, test.ids, seed, boxes=np.asarray(test.clips.boxes)).as_dict()
         for v, f in views.items()}
        if reference is not None else {"missing": "no reference frames in this dataset"}
    )
    # Table 4
    boxes = np.asarray(test.clips.boxes)
    last_raw = test.clips.voxels[:, -1]
    reid: dict[str, Any] = {}
    det = detected_boxes(test) if opts.detection else None
    for tag, bx in (("gt", boxes), ("detected", det)):
        if bx is None:
            continue
        part: dict[str, Any] = {}
        if models["reid_raw"] is not None:
            part["raw"] = reid_table(reid_embeddings(models["reid_raw"], last_raw, bx, crop_hw), test.ids, test.cams, seed,
                                     test.query, test.gallery).as_dict()
        if models["reid"] is not None and anon_last is not None:
            part["anonymized"] = reid_table(reid_embeddings(models["reid"], anon_last, bx, crop_hw), test.ids, test.cams,
                                            seed, test.query, test.gallery).as_dict()
        reid[tag] = part
    if models["reid_raw"] is None:
        reid["raw_missing"] = f"{run_dir} has no raw-event ReId baseline (checkpoints/reid_raw, stage reid)"
    if det is not None:
        reid["detection_recall"] = float(np.isfinite(det).all(1).mean())
    res["reid"] = reid
    # retrieval attack, three settings (+ sanity: enrollment -> reference frames)
    retrieval: dict[str, Any] = {}
    if reference is not None:
        retrieval["enrollment->reference"] = _as(attacks.retrieval(reference))
    retrieval["enrollment->raw"] = _as(attacks.retrieval(views["raw"]))
    retrieval["raw->raw"] = _as(attacks.retrieval(views["raw"], views["raw"]))  # setting 2's no-privacy baseline
    for v in ("anonymized", *ATTACK_VIEWS):
        if v in views:
            retrieval[f"raw->{v}"] = _as(attacks.retrieval(views[v], views["raw"]))
            retrieval[f"enrollment->{v}"] = _as(attacks.retrieval(views[v]))
    identity = identity_attack(run_dir, test.enrollment, anon_last, boxes, test.ids, test.cams, ENROLLMENT_CAMERA,
                               opts.seed, device)  # the direct identity attack: no reconstruction step
    if identity is not None:
        retrieval["enrollment->identity"] = identity.as_dict()
    res["retrieval"] = retrieval
    res["protocol"] = protocol.with_queries(res)
    log.info("protocol: %s ReId queries (one per identity and camera), %s enrollment queries",
             protocol.reid_queries, protocol.enrollment_queries)
    # face verification
    face_src: dict[str, np.ndarray] = ({"reference": reference} if reference is not None else {}) | views
    res["face"] = {k: _as(attacks.face_verification(f)) for k, f in face_src.items()}
    # Table 3, Table 5
    if opts.encryption:
        res["encryption"] = encryption_rows(test, e_rec, models["reid_raw"], attacks, crop_hw, seed, opts.progress)
    res["ablation"] = ablation_rows(run_dir, run_cfg, test, attacker, attacks, crop_hw, seed)
    res.update(attack_results(run_dir, res, {k: v for k, v in views.items() if k != "raw"}, reference))
    res["wall_s"] = round(time.perf_counter() - t_start, 1)

    from anonreid.models.evaluation.report import verdicts_json, write_figures, write_markdown

    res["figures"] = write_figures(res, views, reference, test, out_dir)
    res["verdicts"] = verdicts_json(res)  # the checks of results.md, each judged on its interval's upper bound
    (out_dir / "results.json").write_text(json.dumps(_jsonable(res), indent=1) + "\n")
    (out_dir / "results.md").write_text(with_attacks_section(write_markdown(res), res))
    return res


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, Path):
        return str(x)
    return x
