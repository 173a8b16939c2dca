"""The evaluators of ``anonreid evaluate``: one per table of results.md, each a function of the
:class:`EvalContext` (the test set, the attacker's reconstructions of it, the run's models) returning that
table's typed result (:mod:`anonreid.models.evaluation.results`):

  ============================  =================================================================
  :func:`reconstruction_table`  Table 2: SSIM / PSNR of E_rec's reconstructions, every view
  :func:`reid_table`            Table 4: ReId rank-1/5/10 and mAP, raw vs anonymized, GT and detected boxes
  :func:`retrieval_table`       the retrieval attack (Tables 3, 6, 7): enrollment / raw queries -> each view
  :func:`identity_table`        the direct identity attack, its raw-event reference and the paired difference
  :func:`face_table`            face verification of reference frames and every view
  :func:`encryption_table`      Table 3's encryption baselines (chaotic scrambling and discarding)
  :func:`ablation_table`        Table 5: every ``--ablation`` setting of the run
  ============================  =================================================================

The every-attack table and the strongest attack per metric are
:func:`anonreid.models.evaluation.strong_attacks.attacks_table`. A stochastic anonymizer draws from
torch's RNG, so the driver (:func:`anonreid.models.evaluation.evaluate.evaluate_run`) calls them in a
fixed order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from anonreid.models.data import DEFAULT_HEAD_RATIO, face_boxes
from anonreid.models.evaluation.attacks import (
    ATTACK_VIEWS,
    AttackerSide,
    Views,
    attacker_views,
    embed,
    face_verification_attack,
    image_crops,
    one_per_identity_camera,
    photo_person_box,
    reconstruct,
    reconstruction_attack,
    retrieval_attack,
    retrieval_scores,
)
from anonreid.models.evaluation.intervals import Estimate
from anonreid.models.evaluation.results import (
    ENROLLMENT_CAMERA,
    UNREDACTED,
    AblationRow,
    AblationTable,
    EncryptionRow,
    EncryptionTable,
    FaceScore,
    FaceTable,
    ReconstructionTable,
    ReidTable,
    RetrievalScore,
    RetrievalTable,
)
from anonreid.models.evaluation.testset import TestSet, detected_boxes, reference_frames

# ------------------------------------------------------------------------------------------------ helpers


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


def reid_scores(
    emb: np.ndarray, ids: np.ndarray, cams: np.ndarray, seed: int,
    query: np.ndarray | None = None, gallery: np.ndarray | None = None, days: np.ndarray | None = None,
) -> RetrievalScore:
    """Market-1501: one query per (identity, camera), the gallery every clip (same id+camera excluded);
    or the official ``query`` and ``gallery`` clips (boolean masks) where the dataset lists them. With
    ``days`` (per clip, the day it was filmed on in that day's outfit) the cloth-changing protocol: the
    clips of the query's person in the query's outfit leave the gallery too."""
    found = np.isfinite(emb).all(1)
    if query is not None and gallery is not None:
        q, g = np.flatnonzero(found & query), np.flatnonzero(found & gallery)
    else:
        g = np.flatnonzero(found)
        q = g[one_per_identity_camera(ids[g], cams[g])]
    return retrieval_scores(emb[q], ids[q], cams[q], emb[g], ids[g], cams[g], seed=seed,
                            outfits=(days[q], days[g]) if days is not None else None)


def photo_crops(photos: Sequence[np.ndarray], boxes: np.ndarray, hw: tuple[int, int]) -> torch.Tensor:
    if not len(photos):
        return torch.zeros((0, 1, *hw))
    return torch.cat([image_crops(p[None], b[None], hw) for p, b in zip(photos, boxes, strict=True)])


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
        self.enroll_app = photo_crops(photos, boxes, self.app_hw)
        ratios = np.asarray([self.test.head_ratio.get(i, DEFAULT_HEAD_RATIO) for i in ids], np.float32)
        self.enroll_face = photo_crops(photos, face_boxes(boxes, ratios), self.face_hw)

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

    def identification(self, frames: np.ndarray) -> RetrievalScore | None:
        """Every clip's crop of ``frames`` (a query each) against the enrollment photos (one per identity):
        who is this person in the stream? Chance is one in the number of enrolled identities, and there are
        as many queries as test clips, not one per identity (0 of 40 enrollment queries still has an upper
        bound of 8.8 %); clips of one identity are alike, so the interval narrows by less than the count
        says (the design effect; each check's power is in results.md)."""
        if self.app is None or not len(self.enroll_ids):
            return None
        return retrieval_attack(self.app, self.gallery(frames), self.test.ids, self.test.cams, self.enroll_app,
                                self.enroll_ids, np.full(len(self.enroll_ids), ENROLLMENT_CAMERA), seed=self.seed)

    def face_verification(self, frames: np.ndarray) -> FaceScore | None:
        """Face crops of the last window of ``frames`` against the enrollment photos' faces."""
        if self.face is None or len(self.enroll_ids) < 2:  # no impostor pairs with one identity
            return None
        ratios = np.asarray([self.test.head_ratio.get(i, DEFAULT_HEAD_RATIO) for i in self.test.ids], np.float32)
        probes = image_crops(frames[:, -1], face_boxes(np.asarray(self.test.clips.boxes), ratios), self.face_hw)
        own = isinstance(self.face, nn.Module)
        return face_verification_attack(embed(self.face, probes, normalise=own), self.test.ids,
                                        embed(self.face, self.enroll_face, normalise=own), self.enroll_ids, seed=self.seed)


@dataclass
class EvalContext:
    """What the evaluators read: the test set as the attacker sees it, its reconstructions and the run."""

    run_dir: Path
    run_cfg: Any  # anonreid.models.config.TrainConfig
    test: TestSet
    models: dict[str, nn.Module | None]  # reid_raw, anonymizer, reid (None: not trained)
    attacker: AttackerSide
    attacks: Attacks
    views: Views  # raw, anonymized and every attack's reconstructions (N, T, H, W)
    anon_last: np.ndarray | None  # the anonymized last window of each clip (N, B, H, W)
    reference: np.ndarray | None  # reference frames, where the dataset has them
    crop_hw: tuple[int, int]
    seed: int
    device: torch.device
    #: the raw last window of each clip without the head redaction, where the run redacts (else None)
    unredacted_last: np.ndarray | None = None


# ----------------------------------------------------------------------------------------------- evaluators


def reconstruction_table(ctx: EvalContext) -> ReconstructionTable:
    """Table 2 (+ the inversion / adaptive reconstructions)."""
    if ctx.reference is None:
        return ReconstructionTable({}, "no reference frames in this dataset")
    boxes = np.asarray(ctx.test.clips.boxes)
    return ReconstructionTable({v: reconstruction_attack(f, ctx.reference, ctx.test.ids, ctx.seed, boxes=boxes)
                                for v, f in ctx.views.items()})


def reid_table(ctx: EvalContext, detection: bool = True) -> ReidTable:
    """Table 4: raw-event E_reid on raw voxels and E_reid on anonymized ones, on ground-truth boxes and
    (``detection``) on the event-activity detector's; on a test world filmed on several days also across
    outfits (``cloth_changing``: ground-truth boxes, the cloth-changing protocol of :func:`reid_scores`).
    Where the run redacts heads, raw-event E_reid also on the same clips without the redaction
    (:data:`~anonreid.models.evaluation.results.UNREDACTED`: the no-privacy baseline)."""
    test, models = ctx.test, ctx.models
    last_raw = test.clips.voxels[:, -1]
    gt = np.asarray(test.clips.boxes)
    det = detected_boxes(test) if detection else None
    sources = [("gt", gt, None), ("detected", det, None), ("cloth_changing", gt, test.days)]
    inputs = {"raw": ("reid_raw", last_raw), UNREDACTED: ("reid_raw", ctx.unredacted_last),
              "anonymized": ("reid", ctx.anon_last)}
    embedded: dict[tuple[str, int], np.ndarray] = {}  # (view, boxes): the ground-truth boxes serve twice
    parts: dict[str, dict[str, RetrievalScore]] = {}
    for tag, bx, days in sources:
        if bx is None or (tag == "cloth_changing" and days is None):
            continue
        part: dict[str, RetrievalScore] = {}
        for view, (name, tiles) in inputs.items():
            model = models[name]
            if model is None or tiles is None:
                continue
            if (view, id(bx)) not in embedded:
                embedded[view, id(bx)] = reid_embeddings(model, tiles, bx, ctx.crop_hw)
            part[view] = reid_scores(embedded[view, id(bx)], test.ids, test.cams, ctx.seed, test.query, test.gallery,
                                     days)
        parts[tag] = part
    raw_missing = "" if models["reid_raw"] is not None else (
        f"{ctx.run_dir} has no raw-event ReId baseline (checkpoints/reid_raw, stage reid)")
    recall = float(np.isfinite(det).all(1).mean()) if det is not None else None
    return ReidTable(parts, raw_missing, recall)


def retrieval_table(ctx: EvalContext) -> RetrievalTable:
    """The retrieval attack in three settings (+ the sanity check enrollment -> reference frames) on every
    view, and each view's identification (``view->enrollment``: its clips as queries against the enrollment
    photos); the direct identity attack's rows are :func:`identity_table`'s."""
    views, attacks = ctx.views, ctx.attacks
    rows: dict[str, RetrievalScore | None] = {}
    if ctx.reference is not None:
        rows["enrollment->reference"] = attacks.retrieval(ctx.reference)
    rows["enrollment->raw"] = attacks.retrieval(views["raw"])
    rows["raw->raw"] = attacks.retrieval(views["raw"], views["raw"])  # setting 2's no-privacy baseline
    if ctx.reference is not None:
        rows["reference->enrollment"] = attacks.identification(ctx.reference)
    rows["raw->enrollment"] = attacks.identification(views["raw"])
    for v in ("anonymized", *ATTACK_VIEWS):
        if v in views:
            rows[f"raw->{v}"] = attacks.retrieval(views[v], views["raw"])
            rows[f"enrollment->{v}"] = attacks.retrieval(views[v])
            rows[f"{v}->enrollment"] = attacks.identification(views[v])
    return RetrievalTable(rows)


def identity_table(ctx: EvalContext) -> tuple[dict[str, RetrievalScore | None], dict[str, Estimate]]:
    """The direct identity attack (no reconstruction step) in both directions on the anonymized events,
    and its no-privacy reference on the raw events (when the run trained stage ``identity_raw``), with the
    paired rank-1 difference between the two (:func:`~anonreid.models.evaluation.strong_attacks.identity_attack`)."""
    from anonreid.models.evaluation.strong_attacks import identity_attack

    test = ctx.test
    return identity_attack(ctx.run_dir, test.enrollment, ctx.anon_last, test.clips.voxels[:, -1],
                           np.asarray(test.clips.boxes), test.ids, test.cams, ENROLLMENT_CAMERA, ctx.seed, ctx.device,
                           enrollment_day=ctx.run_cfg.identity.enrollment_day)


def face_table(ctx: EvalContext) -> FaceTable:
    """Face verification: faces of the reference frames and of every view against the enrollment photos."""
    sources: dict[str, np.ndarray] = ({"reference": ctx.reference} if ctx.reference is not None else {}) | ctx.views
    return FaceTable({k: ctx.attacks.face_verification(f) for k, f in sources.items()})


def encryption_table(ctx: EvalContext, progress: bool) -> EncryptionTable:
    """Table 3's encryption baselines: the clips rebuilt from encrypted events, attacked like raw ones."""
    from anonreid.events.encryption import ChaoticDiscard, ChaoticScramble
    from anonreid.models.data import build_clips

    test, reid_raw = ctx.test, ctx.models["reid_raw"]
    rows: dict[str, EncryptionRow] = {}
    ids = sorted(set(test.ids.tolist()))
    for name, transform in (("scrambling", ChaoticScramble(test.dataset.sensor)), ("discarding", ChaoticDiscard())):
        clips = build_clips(test.dataset, ids, test.data_cfg, test.cache, test.fingerprint,
                            max_clips_per_pass=test.clips_per_pass, progress=progress,
                            event_transform=transform)
        if len(clips) != len(test.clips):
            raise RuntimeError(f"{name}: {len(clips)} clips rebuilt from encrypted events, {len(test.clips)} expected")
        frames = reconstruct(ctx.attacker.e_rec, clips.voxels)
        recon = reconstruction_attack(frames, reference_frames(test), test.ids, ctx.seed) if test.has_reference else None
        reid = None
        if reid_raw is not None:
            emb = reid_embeddings(reid_raw, clips.voxels[:, -1], np.asarray(clips.boxes), ctx.crop_hw)
            reid = reid_scores(emb, test.ids, test.cams, ctx.seed, test.query, test.gallery)
        rows[name] = EncryptionRow(repr(transform), recon, reid, ctx.attacks.retrieval(frames))
    return EncryptionTable(rows)


def ablation_table(ctx: EvalContext) -> AblationTable:
    """Table 5: every ``--ablation`` setting of the run's config, evaluated like the main model."""
    from anonreid.models.checkpoint import load_checkpoint

    test = ctx.test
    rows: dict[str, AblationRow] = {}
    for w in ctx.run_cfg.ablation.settings:
        tag = "a{:g}_b{:g}_g{:g}".format(*w)
        ckpt = ctx.run_dir / "ablation" / tag / "checkpoints"
        if not (ckpt / "anonymizer.json").exists() or not (ckpt / "reid.json").exists():
            rows[tag] = AblationRow(w[0], w[1], w[2], missing=f"{ckpt} not found (run `anonreid train --ablation`)")
            continue
        dev = next(ctx.attacker.e_rec.parameters()).device
        anonymizer = load_checkpoint(ckpt / "anonymizer", device=dev).model.eval()
        reid = load_checkpoint(ckpt / "reid", device=dev).model.eval()
        views, anon_last = attacker_views(test.clips.voxels, AttackerSide(ctx.attacker.e_rec), anonymizer, raw=False)
        assert anon_last is not None
        recon = (reconstruction_attack(views["anonymized"], reference_frames(test), test.ids, ctx.seed)
                 if test.has_reference else None)
        scores = reid_scores(reid_embeddings(reid, anon_last, np.asarray(test.clips.boxes), ctx.crop_hw),
                             test.ids, test.cams, ctx.seed, test.query, test.gallery)
        rows[tag] = AblationRow(w[0], w[1], w[2], reconstruction=recon, reid=scores,
                                retrieval=ctx.attacks.retrieval(views["anonymized"]))
    return AblationTable(rows)
