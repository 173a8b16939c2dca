"""Stage 3 of ``anonreid train``: E_an + E_reid trained jointly (:func:`train_joint`).

  alpha (1 - SSIM(E_an(X), X)) + beta privacy + gamma L_reid

privacy is the frozen raw E_rec's SSIM(E_rec(E_an(X)), I) (the paper's stage), or, with
``joint.minmax.enabled``, the worst score over a pool of attackers trained in the loop on E_an's
detached output (:mod:`anonreid.models.minmax`). The anonymizer checkpoint records every attacker it
was trained against with its budget (``attackers_in_training``), which the attack stages
(:mod:`anonreid.models.train_attacks`) must exceed 3x (:mod:`anonreid.models.budget`).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from anonreid.models.anonymizer import attacker_input, to_unit
from anonreid.models.bundle import DEFAULT_STRIDE, REDACTION_KEY, STRIDE_KEY
from anonreid.models.config import STAGES
from anonreid.models.data import Batch, crop_boxes, jitter_boxes, pk_index, uniform_index
from anonreid.models.engine import Hook, seed_everything
from anonreid.models.identity_attack import build_identity_attacker
from anonreid.models.layers import standardise_like
from anonreid.models.losses import ssim
from anonreid.models.minmax import AttackerPool, PoolState
from anonreid.models.reconstruction import run_sequence
from anonreid.models.registry import create_model, model_cfg
from anonreid.models.reid import ReidOutput, reid_loss
from anonreid.models.train import (
    Context,
    _init_reid,
    _new_reid,
    _optimizer,
    _reid_eval,
    _run,
    _val_batches,
    init_anonymizer,
    rec_budget,
    start_reid_from,
)


@dataclass
class JointModels:
    anonymizer: nn.Module
    reid: nn.Module
    rec: nn.Module  # frozen
    pool: AttackerPool | None = None  # the min-max stage's attackers (then ``rec`` is one of them)


def joint_loss(
    m: JointModels, b: Batch, alpha: float, beta: float, gamma: float, crop_hw: tuple[int, int],
    smoothing: float, margin: float, privacy_windows: int, flip: torch.Tensor | None = None,
    privacy_clips: int = 0, reid_boxes: torch.Tensor | None = None, photo_labels: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """alpha (1 - SSIM(E_an(X), X)) + beta privacy + gamma L_reid on one batch of clips.

    privacy is SSIM(E_rec(E_an(X)), I) of the frozen attacker, or, with an attacker pool (min-max),
    the worst person-region reconstruction score over the pool above the flat-grey floor plus
    ``id_weight`` x the worst identity advantage over chance (:mod:`anonreid.models.minmax`).
    E_reid sees the box of the last window of every clip (``reid_boxes`` instead when given: the boxes
    jittered, ``reid.box_jitter``); the reconstruction attackers unroll over the
    last ``privacy_windows`` windows (from a zero state) of ``privacy_clips`` clips spread over the
    batch (0 = all), and the utility term covers every window E_an ran on. Scoring a subset keeps the
    CPU step affordable; every term still gets a gradient through E_an at each step. The identity
    attackers match each clip to the enrollment photo of row ``photo_labels`` (default: the clip's
    identity; in a world filmed on several days the photo of the clip's own outfit, Context.photo_labels).
    """
    n, length = b.voxels.shape[:2]
    w = min(privacy_windows, length)
    k = n if privacy_clips <= 0 else min(privacy_clips, n)
    sel = torch.arange(0, n, max(1, n // k), device=b.voxels.device)[:k]
    x_last = b.voxels[:, -1]
    x_prev = b.voxels[sel, length - w : length - 1].flatten(0, 1)  # (k * (w - 1), B, h, w)
    x = torch.cat([x_last, x_prev])
    a = m.anonymizer(x)
    cfg = model_cfg(m.anonymizer)
    utility = ssim(to_unit(a, cfg.output_range), torch.sigmoid(x))
    a_last, a_prev = a[:n], a[n:]
    a_seq = torch.cat([a_prev.view(k, w - 1, *a.shape[1:]), a_last[sel, None]], dim=1)
    frames = b.frames[sel, length - w :]
    if m.pool is None:
        pred, _ = run_sequence(m.rec, attacker_input(a_seq, cfg))
        privacy = ssim(pred.flatten(0, 1), frames.flatten(0, 1))
        plogs = {"attacker_ssim": float(privacy.detach())}
    else:
        seq, tiles = attacker_input(a_seq, cfg), a_last
        if m.pool.cfg.standardise:
            seq, tiles = standardise_like(seq, b.voxels[sel, length - w :]), standardise_like(tiles, x_last)
        rec_term, plogs = m.pool.rec_privacy(seq, frames, b.boxes[sel], b.labels[sel])
        id_term, id_logs = m.pool.id_privacy(tiles, b.boxes, b.labels if photo_labels is None else photo_labels)
        privacy = rec_term + m.pool.cfg.id_weight * id_term
        plogs.update(id_logs)
    out = m.reid(crop_boxes(a_last, b.boxes if reid_boxes is None else reid_boxes, crop_hw, flip))
    assert isinstance(out, ReidOutput)
    l_reid, logs = reid_loss(out, b.labels, smoothing, margin)
    loss = alpha * (1 - utility) + beta * privacy + gamma * l_reid
    return loss, {"utility_ssim": float(utility.detach()), **plogs, "reid": float(l_reid.detach()), **logs}


def _attacker_pool(ctx: Context, rec: nn.Module) -> AttackerPool:
    """The min-max stage's live attackers (reconstruction: a copy of E_rec or a fresh one; identity)."""
    mc = ctx.cfg.joint.minmax
    if ctx.world > 1:
        raise ValueError("joint.minmax: the attacker pool is not data-parallel; train it with --workers 1")
    if ctx.photos is None:
        raise ValueError("joint.minmax needs the training identities' enrollment photos (a world with enrollment/)")
    if mc.init_rec_from_raw:
        live_rec = copy.deepcopy(rec).requires_grad_(True)
    else:
        live_rec = create_model(model_cfg(rec).name, **model_cfg(rec).kwargs()).to(ctx.device)
    live_id = build_identity_attacker(ctx.cfg.identity, ctx.cfg.data.num_bins, len(ctx.photos)).to(ctx.device)
    face = face_guard(ctx) if mc.face_id_weight > 0 else None
    return AttackerPool(mc, rec, live_rec, live_id, ctx.cfg.identity, ctx.photos.to(ctx.device), ctx.train.num_classes,
                        face)


def face_guard(ctx: Context) -> tuple[nn.Module, tuple[int, int]]:
    """The defender's face net of ``joint.minmax.face_id_weight`` and its crop size: ``checkpoints/face_guard``,
    trained first when missing (or made for other data) on the run's training clips and its people's
    enrollment photos of days ``identity.enrollment_day`` .. + ``photo_days`` - 1, with the ``attacker.face``
    recipe and seed + 1. The evaluation's face net is another one (its own seed, and with
    ``--attacker-data`` another world's people): E_an is never judged by the net it was trained against."""
    from anonreid.events.world import WorldDataset
    from anonreid.models.evaluation.attacks import AttackerCfg, load_attacker_net, train_attacker_net
    from anonreid.models.evaluation.evaluate import AttackerTrainingData, attacker_net_metadata

    if ctx.data_dir is None:
        raise ValueError("joint.minmax.face_id_weight needs a world (--data) to train the defender's face net on")
    face = AttackerCfg.from_config(ctx.cfg).face
    cfg = dataclasses.replace(face, name="face_guard", seed=face.seed + 1)
    day, days = ctx.cfg.identity.enrollment_day, ctx.cfg.identity.photo_days
    net = load_attacker_net(ctx.ckpt_dir, cfg, ctx.device, ctx.fingerprint, day, days, ctx.train.num_classes)
    if net is None:
        data = AttackerTrainingData.of(WorldDataset(ctx.data_dir), ctx.train, day, days)
        meta = attacker_net_metadata(ctx.fingerprint, day, days, ctx.train.num_classes)
        net = train_attacker_net(data.crops(cfg.crop_hw, faces=True), data.labels, cfg, ctx.ckpt_dir, ctx.device, ctx.progress,
                                 {**meta, "role": "defender (min-max face_id)"})
    return net.eval(), cfg.crop_hw


def _update_attackers(ctx: Context, pool: AttackerPool, anonymizer: nn.Module, step: int) -> dict[str, float]:
    """``attacker_steps`` updates of each live attacker, each on a fresh batch of E_an's detached output."""
    mc, rc, ic = ctx.cfg.joint.minmax, ctx.cfg.rec, ctx.cfg.identity
    cfg = model_cfg(anonymizer)
    logs: dict[str, float] = {}
    for j in range(mc.attacker_steps):
        rng = np.random.default_rng([ctx.cfg.seed, STAGES.index("joint"), step, 1 + j])
        b, _ = ctx.sample(rng, uniform_index(rng, len(ctx.train), mc.rec_batch), False)
        with torch.no_grad():
            seq = attacker_input(anonymizer(b.voxels.flatten(0, 1)), cfg).view_as(b.voxels)
            seq = standardise_like(seq, b.voxels) if mc.standardise else seq
        logs.update(pool.update_rec(seq, b.frames, (rc.w_l1, rc.w_ssim, rc.w_tc)))
        b, _ = ctx.sample(rng, pk_index(rng, ctx.train.labels, mc.id_p, mc.id_k), False)
        with torch.no_grad():
            tiles = anonymizer(b.voxels[:, -1])
            tiles = standardise_like(tiles, b.voxels[:, -1]) if mc.standardise else tiles
        clean = crop_boxes(b.frames[:, -1], b.boxes, (ic.crop_hw[0], ic.crop_hw[1]))
        logs.update(pool.update_id(tiles, b.boxes, ctx.photo_labels(b), clean, rng))
    return logs


def train_joint(
    ctx: Context, rec: nn.Module, reid_raw: nn.Module | None, weights: tuple[float, float, float] | None = None,
    stage: str = "joint", ckpt_dir: Path | None = None, steps: int | None = None,
) -> JointModels:
    """Stage 3: E_an + E_reid against the frozen E_rec, or against an attacker pool (``joint.minmax``);
    also each ``--ablation`` setting."""
    jc, rc = ctx.cfg.joint, ctx.cfg.reid
    alpha, beta, gamma = weights if weights is not None else (jc.alpha, jc.beta, jc.gamma)
    seed_everything(ctx.cfg.seed + STAGES.index("joint"))
    anonymizer = create_model(jc.anonymizer, in_bins=ctx.cfg.data.num_bins, **jc.anonymizer_args).to(ctx.device)
    if jc.init:
        init_anonymizer(anonymizer, Path(jc.init), ctx.device)
    reid = _new_reid(ctx)
    if rc.init:
        _init_reid(reid, Path(rc.init), ctx.device)
    elif jc.init_reid_from_raw and reid_raw is not None:
        start_reid_from(reid, reid_raw)  # a raw ReId of other people gives its trunk, not its classifier
    rec.requires_grad_(False).eval()
    pool = _attacker_pool(ctx, rec) if jc.minmax.enabled else None
    m = JointModels(anonymizer, reid, rec, pool)
    crop_hw = ctx.crop_hw

    def step(i: int) -> tuple[torch.Tensor, dict[str, float]]:
        rng = ctx.rng(stage, i)
        b, flip = ctx.sample(rng, pk_index(rng, ctx.train.labels, rc.p, rc.k), rc.flip)
        logs = _update_attackers(ctx, pool, anonymizer, i) if pool is not None else {}
        loss, more = joint_loss(m, b, alpha, beta, gamma, crop_hw, rc.smoothing, rc.margin, jc.privacy_windows, flip,
                                jc.privacy_clips, jitter_boxes(b.boxes, rc.box_jitter, rng, b.voxels.shape[-2:]),
                                ctx.photo_labels(b) if pool is not None else None)
        return loss, {**more, **logs}

    def evaluate() -> dict[str, float]:
        util = priv = raw = live = 0.0
        n = 0
        for b in _val_batches(ctx):
            x = b.voxels.flatten(0, 1)
            a = anonymizer(x)
            util += float(ssim(to_unit(a, model_cfg(anonymizer).output_range), torch.sigmoid(x))) * len(b.labels)
            seq = attacker_input(a.view_as(b.voxels), model_cfg(anonymizer))
            pa, _ = run_sequence(rec, seq)
            pr, _ = run_sequence(rec, b.voxels)
            priv += float(ssim(pa.flatten(0, 1), b.frames.flatten(0, 1))) * len(b.labels)
            raw += float(ssim(pr.flatten(0, 1), b.frames.flatten(0, 1))) * len(b.labels)
            if pool is not None:
                pl, _ = run_sequence(pool.live_rec.eval(), standardise_like(seq, b.voxels) if pool.cfg.standardise else seq)
                live += float(ssim(pl.flatten(0, 1), b.frames.flatten(0, 1))) * len(b.labels)
            n += len(b.labels)
        rank1 = _reid_eval(ctx, reid, anonymizer)
        out = {"utility_ssim": util / n, "attacker_ssim": priv / n, "attacker_ssim_raw": raw / n, "rank1": rank1}
        return out | ({"live_attacker_ssim": live / n} if pool is not None else {})

    ocfg = jc if steps is None else jc.model_copy(update={"steps": steps})
    optimizer = _optimizer(
        [{"params": anonymizer.parameters(), "lr": jc.lr}, {"params": reid.parameters(), "lr": jc.reid_lr}], ocfg
    )

    def pool_hooks(stage_dir: Path) -> list[Hook]:
        assert pool is not None
        return [PoolState(pool, stage_dir)]

    _run(ctx, stage, {"anonymizer": anonymizer, "reid": reid}, optimizer, step, evaluate, ocfg, rc.p * rc.k,
         extra_hooks=pool_hooks if pool is not None else None)
    out_dir = ckpt_dir or ctx.ckpt_dir
    against = [rec_budget(ctx), *(pool.budgets(ocfg.steps, rec_budget(ctx)) if pool is not None else [])]
    meta = ctx.metadata(stage, ctx.results[stage]["metrics"], loss_weights={"alpha": alpha, "beta": beta, "gamma": gamma},
                        attacker=model_cfg(rec).name, attackers_in_training=[b.as_dict() for b in against],
                        **({"pool": {"snapshots_taken": pool.snapshots_taken, "attacker_updates": pool.updates}}
                           if pool is not None else {}))
    dc = ctx.cfg.data
    redaction = {REDACTION_KEY: {"head": dc.redact_head, "margin": dc.redact_margin}} if dc.redact_head > 0 else {}
    # the camera's region grid, and the head redaction the camera must apply before E_an
    ctx.save(out_dir / "anonymizer", anonymizer, {**meta, STRIDE_KEY: DEFAULT_STRIDE, **redaction})
    ctx.save(out_dir / "reid", reid, {**meta, "trained_on": f"anonymized by {model_cfg(anonymizer).name}"})
    return JointModels(anonymizer.eval(), reid.eval(), rec, pool)
