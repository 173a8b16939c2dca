"""``anonreid evaluate``: the paper's tables, reproduced on a trained run, plus the attacks it did not run.

Test data are the clips of the world's *test* identities (or of Event-ReId's official test split),
built exactly as training builds its clips (:func:`anonreid.models.data.build_clips`, the run's data
config: sensor-scale tiles around the person, ``clip_len`` consecutive 33.3 ms windows), at most
``clips_per_pass`` evenly spaced clips per pass. E_rec unrolls over each clip from a zero state; the
last window of each clip gives the ReId crop (ground-truth box, and separately the box of the event
activity detector :mod:`anonreid.events.detection`), the reconstruction crops for the retrieval attack
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

This module is the driver: it opens the test set (:mod:`~anonreid.models.evaluation.testset`), loads the
run and the attacker's nets, reconstructs every view once, then calls one evaluator per table
(:mod:`~anonreid.models.evaluation.tables`, :mod:`~anonreid.models.evaluation.strong_attacks`); each
returns a typed result (:mod:`~anonreid.models.evaluation.results`), from which
:mod:`~anonreid.models.evaluation.report` renders results.md and the figures, and
:meth:`~anonreid.models.evaluation.results.EvaluationResults.to_json` writes results.json.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from anonreid.models.data import DEFAULT_HEAD_RATIO, face_boxes
from anonreid.models.engine import seed_everything
from anonreid.models.evaluation.attacks import (
    AttackerCfg,
    attacker_views,
    image_crops,
    load_attacker_net,
    load_attacker_side,
    load_face_embedder,
    photo_person_box,
    train_attacker_net,
)
from anonreid.models.evaluation.protocol import evaluation_protocol
from anonreid.models.evaluation.results import (
    EvaluatedSetSummary,
    EvaluationResults,
    RetrievalTable,
    RunInfo,
    Scores,
)
from anonreid.models.evaluation.tables import (
    Attacks,
    EvalContext,
    ablation_table,
    encryption_table,
    face_table,
    identity_table,
    photo_crops,
    reconstruction_table,
    reid_table,
    retrieval_table,
)
from anonreid.models.evaluation.testset import TestSet, open_test_set, reference_frames

log = logging.getLogger(__name__)

RUN_MODELS = ("reid_raw", "anonymizer", "reid")  # the attacker side: attacks.load_attacker_side


@dataclass
class EvalOptions:
    clips_per_pass: int = 8
    attacker: AttackerCfg | None = None  # None: AttackerCfg.from_config(the run's config)
    face_weights: Path | None = None  # a TorchScript ArcFace; default: the attacker's own face net
    encryption: bool = True
    detection: bool = True
    seed: int = 0
    progress: bool = True
    time_unit: str | None = None  # Event-ReId files: their time unit (None: inferred, with a warning)
    sensor: str = ""  # Event-ReId chunk files: WxH
    verdict: bool = True  # False (--no-verdict): the numbers without privacy verdicts, even on seen identities
    train_data: Path | None = None  # the world the run trained on, when it is not the evaluated one
    world_aliases: dict[str, Path] = field(default_factory=dict)  # fingerprint -> a re-simulation of that world
    # the world whose training identities the attacker's nets learn from (default: the evaluated world's):
    # e.g. one filmed on several days, so that an outfit is no cue to them (docs/results/biometric)
    attacker_data: Path | None = None


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


# --------------------------------------------------------------------------------------- attacker networks


def check_attacker_world(world: Path, test_identities: set[str]) -> None:
    """Refuse an attacker world (``--attacker-data``) whose training people include a test identity: the
    attacker's nets would have learnt the very people they are asked to identify."""
    from anonreid.events.world import WorldDataset

    seen = sorted(set(WorldDataset(world).identities("train")) & test_identities)
    if seen:
        raise ValueError(f"--attacker-data {world}: its training identities include {len(seen)} test identities "
                         f"of the evaluated world ({', '.join(seen[:5])}{', ...' if len(seen) > 5 else ''}); give a "
                         "world of other people (e.g. simulate it with --first-identity after the test world's last)")


def attacker_networks(
    run_dir: Path, data_dir: Path | None, run_cfg: Any, acfg: AttackerCfg, device: torch.device, progress: bool = True,
) -> tuple[nn.Module | None, nn.Module | None]:
    """The attacker's appearance ReId and face nets from ``RUN_DIR/attacker/``, trained there first when
    missing (on every *training* identity of the world: reference-frame crops and enrollment photos of the
    day ``run_cfg.identity.enrollment_day`` and the ``identity.photo_days - 1`` days after it). The run's
    ``data.val_identities`` do not apply: they hold people out of the run's own training for its model
    selection, and the attacker is not the run (it learns from every person it may, none of the test
    split); a checkpoint trained on another count of people is trained again."""
    from anonreid.models.data import build_clips, dataset_fingerprint

    out_dir = run_dir / "attacker"
    fingerprint = dataset_fingerprint(data_dir) if data_dir is not None else None
    day, days = run_cfg.identity.enrollment_day, run_cfg.identity.photo_days
    ds, train_ids = None, None
    if data_dir is not None and fingerprint is not None:
        from anonreid.events.world import WorldDataset

        ds = WorldDataset(data_dir)
        train_ids = sorted(ds.identities("train"))
    people = None if train_ids is None else len(train_ids)
    app = load_attacker_net(out_dir, acfg.appearance, device, fingerprint, day, days, people)
    face = load_attacker_net(out_dir, acfg.face, device, fingerprint, day, days, people)
    if app is not None and face is not None:
        return app, face
    if ds is None or train_ids is None or fingerprint is None:
        log.warning("no attacker nets under %s and no world (--data) to train them on", out_dir)
        return app, face
    clips = build_clips(ds, train_ids, run_cfg.data, run_dir / "cache", fingerprint, progress=progress)
    meta = attacker_net_metadata(fingerprint, day, days, len(train_ids))
    data = AttackerTrainingData.of(ds, clips, day, days)  # the photos are read once for both nets
    if app is None:
        app = train_attacker_net(data.crops(acfg.appearance.crop_hw, faces=False), data.labels, acfg.appearance,
                                 out_dir, device, progress, meta)
    if face is None:
        face = train_attacker_net(data.crops(acfg.face.crop_hw, faces=True), data.labels, acfg.face, out_dir,
                                  device, progress, meta)
    return app, face


def attacker_net_metadata(fingerprint: str, day: int, days: int, people: int) -> dict[str, Any]:
    """What :func:`load_attacker_net` checks of a net trained on :class:`AttackerTrainingData`."""
    return {"data_fingerprint": fingerprint, "enrollment_day": day, "photo_days": days,
            "trained_on": f"reference frames + enrollment photos of the world's {people} training identities"
                          + (f" (days {day}-{day + days - 1})" if days > 1 else "")}


@dataclass
class AttackerTrainingData:
    """The training data of the attacker's embedding nets: the last reference frame of every clip of a
    clip set and its identities' enrollment photos of days ``day`` .. ``day + days - 1``, labelled with
    the clips' identity indices (frames first, then the photos day by day)."""

    frames: np.ndarray  # (N, H, W)
    boxes: np.ndarray  # (N, 4) person boxes
    photos: list[np.ndarray]
    photo_boxes: np.ndarray  # (P, 4)
    labels: np.ndarray  # (N + P,)
    head_ratios: np.ndarray  # (N + P,) each one's person's

    @classmethod
    def of(cls, ds: Any, clips: Any, day: int, days: int) -> AttackerTrainingData:
        head = {p["identity"]: float(p.get("head_ratio", DEFAULT_HEAD_RATIO)) for p in ds.meta["identities"]}
        photos = [ds.enrollment(i, d) for d in range(day, day + days) for i in clips.identities]
        labels = np.r_[np.asarray(clips.labels), np.tile(np.arange(len(clips.identities)), days)]
        return cls(np.asarray(clips.frames[:, -1]), np.asarray(clips.boxes), photos,
                   np.stack([photo_person_box(p) for p in photos]), labels,
                   np.asarray([head[clips.identities[int(i)]] for i in labels], np.float32))

    def crops(self, hw: tuple[int, int], faces: bool) -> torch.Tensor:
        """[0, 1] crops ``(N + P, 1, h, w)`` of the person boxes, or with ``faces`` of their face boxes."""
        boxes, photo_boxes = self.boxes, self.photo_boxes
        if faces:
            n = len(self.frames)
            boxes, photo_boxes = face_boxes(boxes, self.head_ratios[:n]), face_boxes(photo_boxes, self.head_ratios[n:])
        return torch.cat([image_crops(self.frames, boxes, hw), photo_crops(self.photos, photo_boxes, hw)])


# ------------------------------------------------------------------------------------------------- driver


def evaluate_run(
    run_dir: str | Path | None, out_dir: str | Path, data_dir: str | Path | None = None, dataset: str = "world",
    root: str | Path | None = None, opts: EvalOptions | None = None, command: str = "",
) -> EvaluationResults:
    """Evaluate a training run, or a shipped model set (``None``: the package's default); writes
    ``results.json``, ``results.md`` and figures to ``out_dir``."""
    from anonreid.models.bundle import run_view
    from anonreid.models.config import load_train_config
    from anonreid.models.engine import resolve_device

    opts = opts or EvalOptions()
    t_start = time.perf_counter()
    out_dir = Path(out_dir)
    run_dir = run_view(run_dir, out_dir)  # a run directory, or a view of a shipped model set (the default's)
    data_path = Path(data_dir) if data_dir is not None else None
    run_cfg = load_train_config(run_dir / "config.yaml")
    protocol = evaluation_protocol(run_dir, run_cfg, dataset, data_path, opts.verdict, opts.train_data,
                                   Path(root) if root else None, opts.world_aliases)  # first
    if run_cfg.threads:
        torch.set_num_threads(run_cfg.threads)
    device = resolve_device(run_cfg.device)
    models = load_run_models(run_dir, device)
    if opts.attacker is None:
        opts = replace(opts, attacker=AttackerCfg.from_config(run_cfg))
    assert opts.attacker is not None
    attacker = load_attacker_side(run_dir, device)
    out_dir.mkdir(parents=True, exist_ok=True)
    day = run_cfg.identity.enrollment_day
    test = open_test_set(dataset, data_path, Path(root) if root else None, run_cfg.data, run_dir / "cache" / "eval",
                         opts.clips_per_pass, opts.progress, opts.time_unit, opts.sensor, day)
    unredacted = _unredacted_last(test, dataset, data_path, Path(root) if root else None, run_cfg.data,
                                  run_dir / "cache" / "eval", opts)
    if opts.attacker_data is not None:  # before anything is computed
        check_attacker_world(opts.attacker_data, {str(i) for i in test.ids})
    log.info("evaluating %d clips of %d identities", len(test.clips), len(set(test.ids.tolist())))

    seed_everything(opts.seed)  # a stochastic anonymizer (anonymizer_noisy) draws its noise from torch's RNG
    views, anon_last = attacker_views(test.clips.voxels, attacker, models["anonymizer"])
    app, face_net = attacker_networks(run_dir, opts.attacker_data or data_path, run_cfg, opts.attacker, device,
                                      opts.progress)
    face: Any = load_face_embedder(opts.face_weights) if opts.face_weights else face_net
    attacks = Attacks(test, app, face, opts.attacker.appearance.crop_hw, opts.attacker.face.crop_hw, opts.seed)
    ctx = EvalContext(run_dir, run_cfg, test, models, attacker, attacks, views, anon_last,
                      reference_frames(test) if test.has_reference else None,
                      (run_cfg.data.crop_hw[0], run_cfg.data.crop_hw[1]), opts.seed, device, unredacted)
    info = _run_info(command, run_dir, dataset, str(data_path or root), run_cfg, device, test, opts)

    # one evaluator per table, in this order (a stochastic anonymizer in the ablation draws from torch's RNG)
    reconstruction = reconstruction_table(ctx)
    reid = reid_table(ctx, opts.detection)
    identity_rows, identity_reduction = identity_table(ctx)
    retrieval = RetrievalTable(retrieval_table(ctx).rows | identity_rows)
    gt = reid.boxes.get("gt", {})
    row, enrollment = gt.get("anonymized") or gt.get("raw"), retrieval.get("enrollment->raw")
    protocol = replace(protocol, reid_queries=row.num_queries if row else None,
                       enrollment_queries=enrollment.num_queries if enrollment else None)
    log.info("protocol: %s ReId queries (one per identity and camera), %s enrollment queries",
             protocol.reid_queries, protocol.enrollment_queries)
    scores = Scores(reconstruction, reid, retrieval, face_table(ctx), protocol, identity_reduction)
    encryption = encryption_table(ctx, opts.progress) if opts.encryption else None
    ablation = ablation_table(ctx)
    from anonreid.models.evaluation.strong_attacks import attacks_table

    every_attack = attacks_table(run_dir, scores, {k: v for k, v in views.items() if k != "raw"}, ctx.reference)
    wall_s = round(time.perf_counter() - t_start, 1)

    from anonreid.models.evaluation.report import verdicts, write_figures, write_markdown

    figures = write_figures(scores, views, ctx.reference, test, out_dir)
    results = EvaluationResults(info, scores, encryption, ablation, every_attack, wall_s, figures,
                                verdicts(scores))  # the checks of results.md, each judged on its upper bound
    (out_dir / "results.json").write_text(json.dumps(results.to_json(), indent=1) + "\n")
    (out_dir / "results.md").write_text(write_markdown(results))
    return results


def _unredacted_last(test: TestSet, dataset: str, data_path: Path | None, root: Path | None, data_cfg: Any,
                     cache: Path, opts: EvalOptions) -> np.ndarray | None:
    """The raw last window of each test clip without the head redaction the run trained behind (None when it
    redacts nothing): the clips are chosen from the boxes alone, so they are the same clips, and the raw
    ReId on them is the no-privacy baseline that anonymization's cost is measured from."""
    if data_cfg.redact_head <= 0:
        return None
    plain = open_test_set(dataset, data_path, root, data_cfg.model_copy(update={"redact_head": 0.0}), cache,
                          opts.clips_per_pass, opts.progress, opts.time_unit, opts.sensor, 0)
    if not np.array_equal(np.asarray(plain.clips.boxes), np.asarray(test.clips.boxes), equal_nan=True):
        raise RuntimeError("the test clips without the head redaction are not those with it (their boxes differ)")
    return np.asarray(plain.clips.voxels[:, -1])


def _run_info(command: str, run_dir: Path, dataset: str, data: str, run_cfg: Any, device: torch.device,
              test: TestSet, opts: EvalOptions) -> RunInfo:
    assert opts.attacker is not None
    summary = EvaluatedSetSummary(
        len(test.clips), len(set(test.ids.tolist())), sorted(set(test.cams.tolist())), opts.clips_per_pass,
        test.data_cfg.clip_len, list(run_cfg.data.tile_hw or []), test.has_reference,
        "query and gallery = the official query_list.txt and gallery_list.txt" if test.query is not None
        else "query = one clip per identity and camera")
    joint = {"alpha": run_cfg.joint.alpha, "beta": run_cfg.joint.beta, "gamma": run_cfg.joint.gamma,
             "minmax": run_cfg.joint.minmax.enabled}  # the loss weights (beta: the frontier's knob)
    return RunInfo(command, str(run_dir), dataset, data, run_cfg.name, str(device), _model_versions(run_dir), joint,
                   summary, {"appearance": opts.attacker.appearance.__dict__, "face": opts.attacker.face.__dict__},
                   str(opts.face_weights) if opts.face_weights else "attacker's own face net",
                   run_cfg.identity.enrollment_day, run_cfg.identity.photo_days)
