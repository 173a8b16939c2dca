"""Stages 4-8 of ``anonreid train``: the strongest attacks we build on the frozen anonymizer.

Each one trains only on the training identities, after E_an is frozen, and must have at least 3x the
budget of any attacker of its kind that E_an was trained against (:mod:`anonreid.models.budget`;
checked before it trains, refused with :class:`~anonreid.models.budget.AttackBudgetError`):

  ``inv``       E_inv trained end to end *through the frozen raw E_rec*: E_rec(E_inv(E_an(X))) against
                the reference frames (L1 + 1 - SSIM on the person region, ``inv.region``) and against
                the retrieval attacker's appearance
                embedding of the person crop (its appearance net, frozen; trained first when the run
                has none, exactly as ``anonreid evaluate`` trains it) -> ``e_inv``
  ``adaptive``  a fresh E_rec trained on E_an(X) -> I                          -> ``e_rec_adaptive``
  ``finetune``  the raw E_rec fine-tuned on E_an(X) -> I                       -> ``e_rec_finetuned``
  ``linear``    the closed-form linear inverse (the floor; no budget rule)     -> ``e_lin``
  ``identity``  the direct identity attack: voxel + photo towers matching anonymized crops to
                enrollment photos (:mod:`anonreid.models.identity_attack`)    -> ``attack_id_voxel``,
                                                                                ``attack_id_photo``
  ``identity_raw``  the same attack, budget and batches on the *raw* events: not an attack on E_an but
                its no-privacy reference (what the anonymizer takes away from the strongest attack;
                no budget rule)                                              -> ``attack_id_raw_voxel``,
                                                                                ``attack_id_raw_photo``

Every checkpoint records its ``budget`` and the rule's verdict against the anonymizer's
``attackers_in_training`` (``budget_rule``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from anonreid.models.anonymizer import to_voxel_range
from anonreid.models.budget import Budget, budget_report, check_attack_budget, trained_against
from anonreid.models.checkpoint import read_sidecar
from anonreid.models.config import STAGES
from anonreid.models.data import crop_boxes, pk_index, uniform_index
from anonreid.models.engine import seed_everything
from anonreid.models.identity_attack import (
    VOXEL_TOWER,
    batch_photos,
    build_identity_attacker,
    identity_loss,
    tower_names,
)
from anonreid.models.inversion import fit_linear_inverse
from anonreid.models.layers import ChannelAffine, fit_channel_affine
from anonreid.models.losses import box_masks, region_ssim, ssim
from anonreid.models.minmax import pool_budgets
from anonreid.models.reconstruction import run_sequence
from anonreid.models.registry import builder_args, create_model, model_cfg
from anonreid.models.train import (
    OUTPUTS,
    Context,
    _barrier,
    _optimizer,
    _run,
    _val_batches,
    rec_budget,
    train_reconstruction,
)

log = logging.getLogger(__name__)

#: the order they train in: the closed-form linear inverse first, the inversion starts from it
ATTACK_STAGES = ("linear", "inv", "adaptive", "finetune", "identity", "identity_raw")


def anonymizer_budgets(ctx: Context) -> list[Budget]:
    """The attackers the run's anonymizer was trained against (from its checkpoint)."""
    return trained_against(read_sidecar(ctx.ckpt_dir / "anonymizer")["metadata"])


#: the config keys that raise each attack's budget (named when the rule refuses it)
BUDGET_KNOBS = {"inv": "inv.steps or inv.batch_size", "adaptive": "adaptive.steps or adaptive.batch_size",
                "finetune": "finetune.steps or finetune.batch_size", "identity": "identity.steps or identity.p x k"}


def attack_budget(ctx: Context, stage: str) -> Budget | None:
    """The training budget of attack ``stage`` in this run (None for ``linear``: a closed-form fit, which
    the rule does not cover)."""
    cfg = ctx.cfg
    if stage == "inv":
        return Budget("e_inv", "reconstruction", cfg.inv.steps, cfg.inv.batch_size)
    if stage in ("adaptive", "finetune"):
        rcfg = getattr(cfg, stage)
        start = rec_budget(ctx) if stage == "finetune" else None
        return Budget(OUTPUTS[stage][0], "reconstruction", rcfg.steps, rcfg.batch_size,
                      "e_rec" if start else None, start.total if start else 0)
    if stage == "identity":  # P x K sampling caps P at the identities there are
        return Budget(VOXEL_TOWER, "identity", cfg.identity.steps, identity_batch(ctx))
    return None


def identity_batch(ctx: Context) -> int:
    """Crops per batch of the direct identity attack (P x K sampling caps P at the identities there are)."""
    return min(ctx.cfg.identity.p, ctx.train.num_classes) * ctx.cfg.identity.k


def check_budgets_up_front(ctx: Context, attacks: Sequence[str], joint_pending: Callable[[], bool]) -> None:
    """Refuse, before any stage trains, a run whose attack stages would fall under the 3x rule (each
    stage checks again when it starts; this spares the hours of the stages before it). ``joint_pending()``:
    whether the anonymizer is trained in this run, against the attackers its config and E_rec give (asked
    only when there are attacks to check: on a resumed run it reads the joint stage's state)."""
    if not attacks:
        return
    if joint_pending():
        rec = rec_budget(ctx)
        against = [rec]
        mc = ctx.cfg.joint.minmax
        if mc.enabled and ctx.photos is not None:
            against += pool_budgets(mc, ctx.cfg.joint.steps, rec, ctx.train.num_classes)
    elif (ctx.ckpt_dir / "anonymizer.json").exists():
        against = anonymizer_budgets(ctx)
    else:
        return  # no anonymizer, none to be trained: the attack stage says so itself
    for stage in attacks:
        budget = attack_budget(ctx, stage)
        if budget is not None:
            check_attack_budget(budget, against, knobs=BUDGET_KNOBS[stage])


def _checked(ctx: Context, stage: str) -> dict[str, Any]:
    """Refuse attack ``stage`` below the 3x rule; the rule's verdict for its checkpoint metadata otherwise."""
    budget = attack_budget(ctx, stage)
    assert budget is not None
    against = anonymizer_budgets(ctx)
    check_attack_budget(budget, against, knobs=BUDGET_KNOBS[stage])
    return {"budget": budget.as_dict(), "budget_rule": budget_report(budget, against)}


def _trained_on(anonymizer: nn.Module) -> str:
    return f"anonymized by {model_cfg(anonymizer).name} (frozen), training identities only"


# ------------------------------------------------------------------------------------------ reconstruction


def train_adaptive(ctx: Context, stage: str, anonymizer: nn.Module) -> nn.Module:
    """``adaptive`` (a fresh E_rec) or ``finetune`` (from the raw E_rec) on E_an(X) -> I."""
    meta = _checked(ctx, stage)
    init = ctx.load("e_rec") if stage == "finetune" else None
    return train_reconstruction(ctx, stage, anonymizer, init, extra_meta=meta)


def appearance_net(ctx: Context) -> nn.Module:
    """The retrieval attacker's appearance net of this run (``RUN_DIR/attacker/appearance``), trained on
    the world's training identities first when missing (what ``anonreid evaluate`` uses)."""
    from anonreid.models.evaluation.attacks import AttackerCfg
    from anonreid.models.evaluation.evaluate import attacker_networks

    if ctx.data_dir is None:
        raise ValueError("stage inv: the appearance-embedding loss needs the world (--data) to train the "
                         "retrieval attacker's appearance net on; or pass appearance= / set inv.w_emb=0")
    acfg = AttackerCfg.from_config(ctx.cfg)
    if ctx.is_main:  # rank 0 trains it when missing, then every rank loads it
        attacker_networks(ctx.run_dir, ctx.data_dir, ctx.cfg, acfg, ctx.device, ctx.progress)
    _barrier(ctx)
    app, _ = attacker_networks(ctx.run_dir, ctx.data_dir, ctx.cfg, acfg, ctx.device, ctx.progress)
    if app is None:
        raise RuntimeError(f"{ctx.run_dir}/attacker: no appearance net could be trained")
    return app


def frame_scores(pred: torch.Tensor, frames: torch.Tensor, boxes: torch.Tensor, region: str = "person"
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """(L1, SSIM) of an attack's frames against the reference frames, clips ``(N, T, 1, H, W)`` with one
    box ``(N, 4)`` each: on the person region (the box grown by 10 % on each side, every window of the
    clip; :func:`~anonreid.models.losses.box_masks`, as the min–max stage scores its attackers) with
    ``region="person"``, else over the whole tile (``"frame"``)."""
    p, f = pred.flatten(0, 1), frames.flatten(0, 1)
    if region == "frame":
        return F.l1_loss(p, f), ssim(p, f)
    masks = box_masks(boxes, (p.shape[-2], p.shape[-1])).repeat_interleave(pred.shape[1], 0)
    m = masks.expand_as(p).float()
    return (m * (p - f).abs()).sum() / m.sum().clamp_min(1.0), region_ssim(p, f, masks).mean()


def train_inversion(ctx: Context, anonymizer: nn.Module, rec: nn.Module, appearance: nn.Module | None = None) -> nn.Module:
    """Stage ``inv``: E_inv trained through the frozen raw E_rec (frames + appearance embedding)."""
    from anonreid.models.evaluation.attacks import normalise_images

    ic = ctx.cfg.inv
    meta = _checked(ctx, "inv")
    if appearance is None and ic.w_emb > 0:
        appearance = appearance_net(ctx)
    app_hw = tuple(model_cfg(appearance).input_hw or (64, 32)) if appearance is not None else (64, 32)
    seed_everything(ctx.cfg.seed + STAGES.index("inv"))
    an_cfg = model_cfg(anonymizer)
    args: dict[str, Any] = {"input_range": an_cfg.output_range} if ic.model == "inversion_residual" else {}
    linear: nn.Module | None = None
    if ic.init == "linear" and "linear_kernel" in builder_args(ic.model):
        linear = _linear_inverse(ctx, anonymizer, rec)
        args["linear_kernel"] = int(linear.conv.kernel_size[0])  # type: ignore[union-attr,index]
    elif "input_affine" in builder_args(ic.model):
        args["input_affine"] = True
    inv = create_model(ic.model, in_bins=ctx.cfg.data.num_bins, **args).to(ctx.device)
    if linear is not None:  # E_inv starts as the floor: the residual head is zero
        inv.linear.load_state_dict(linear.state_dict())  # type: ignore[union-attr]
    for m in (anonymizer, rec, *([appearance] if appearance is not None else [])):
        m.requires_grad_(False).eval()
    fitted: dict[str, Any] = {}
    affine = getattr(inv, "input_affine", None)
    if isinstance(affine, ChannelAffine):  # E_an's output channels get the raw voxels' mean and spread
        rng = ctx.rng("inv", ic.steps)  # a step the training loop never draws
        b, _ = ctx.sample(rng, uniform_index(rng, len(ctx.train), min(len(ctx.train), 64)), False)
        x = b.voxels.flatten(0, 1)
        with torch.no_grad():
            fitted = fit_channel_affine(affine, to_voxel_range(anonymizer(x), an_cfg.output_range), x)

    def frames_of(voxels: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            a = anonymizer(voxels.flatten(0, 1))
        pred, _ = run_sequence(rec, inv(a).view_as(voxels))
        return pred

    def embedding(frames: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        assert appearance is not None
        return appearance(normalise_images(crop_boxes(frames, boxes, app_hw)))  # type: ignore[arg-type]

    def step(i: int) -> tuple[torch.Tensor, dict[str, float]]:
        rng = ctx.rng("inv", i)
        b, _ = ctx.sample(rng, uniform_index(rng, len(ctx.train), ic.batch_size), False)
        pred = frames_of(b.voxels)
        l1, s = frame_scores(pred, b.frames, b.boxes, ic.region)
        loss = ic.w_l1 * l1 + ic.w_ssim * (1 - s)
        logs = {"l1": float(l1.detach()), "ssim": float(s.detach())}
        if appearance is not None and ic.w_emb > 0:
            with torch.no_grad():
                target = embedding(b.frames[:, -1], b.boxes)
            cos = (embedding(pred[:, -1], b.boxes) * target).sum(1).mean()
            loss = loss + ic.w_emb * (1 - cos)
            logs["emb_cos"] = float(cos.detach())
        return loss, logs

    def evaluate() -> dict[str, float]:
        s = person = spread = target = 0.0
        n = 0
        for b in _val_batches(ctx):
            pred = frames_of(b.voxels)
            s += float(ssim(pred.flatten(0, 1), b.frames.flatten(0, 1))) * len(b.labels)
            person += float(frame_scores(pred, b.frames, b.boxes, "person")[1]) * len(b.labels)
            spread += float(pred.flatten(2).std(2).mean()) * len(b.labels)
            target += float(b.frames.flatten(2).std(2).mean()) * len(b.labels)
            n += len(b.labels)
        return {"attacker_ssim": s / n, "attacker_person_ssim": person / n, "spread_ratio": spread / max(target, 1e-12)}

    _run(ctx, "inv", {"inv": inv}, _optimizer([{"params": inv.parameters()}], ic), step, evaluate, ic, ic.batch_size)
    ctx.save(ctx.ckpt_dir / "e_inv", inv, ctx.metadata(
        "inv", ctx.results["inv"]["metrics"], trained_on=_trained_on(anonymizer), through="e_rec (frozen, raw)",
        started_from="the linear inverse (e_lin)" if linear is not None else "E_an's output in the voxel range",
        appearance_loss=appearance is not None and ic.w_emb > 0, **({"input_affine": fitted} if fitted else {}), **meta))
    return inv.eval()


def _pairs(ctx: Context, anonymizer: nn.Module, index: np.ndarray, batch: int = 8) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    for i in range(0, len(index), batch):
        x = ctx.train.batch(index[i : i + batch], ctx.device).voxels.flatten(0, 1)
        with torch.no_grad():
            yield anonymizer(x).cpu(), x.cpu()


def _linear_inverse(ctx: Context, anonymizer: nn.Module, rec: nn.Module) -> nn.Module:
    """The run's closed-form linear inverse (``e_lin``; stage ``linear`` runs before ``inv``), fitted by
    stage ``linear`` now when the run has none (``--stage inv`` alone on a run without it)."""
    if (ctx.ckpt_dir / "e_lin.json").exists():
        return ctx.load("e_lin")
    return train_linear(ctx, anonymizer, rec)


def train_linear(ctx: Context, anonymizer: nn.Module, rec: nn.Module) -> nn.Module:
    """Stage ``linear``: the closed-form linear inverse, fitted on ``linear.clips`` training clips."""
    lc = ctx.cfg.linear
    lin = create_model("linear_inverse", in_bins=ctx.cfg.data.num_bins, kernel=lc.kernel,
                       input_range=model_cfg(anonymizer).output_range)
    index = np.unique(np.linspace(0, len(ctx.train) - 1, min(lc.clips, len(ctx.train))).round().astype(int))
    anonymizer.eval()
    fit = fit_linear_inverse(lin, _pairs(ctx, anonymizer, index), lc.ridge)  # type: ignore[arg-type]
    lin = lin.to(ctx.device).eval()
    s, n = 0.0, 0
    with torch.no_grad():
        for b in _val_batches(ctx):
            a = anonymizer(b.voxels.flatten(0, 1))
            pred, _ = run_sequence(rec, lin(a).view_as(b.voxels))
            s += float(ssim(pred.flatten(0, 1), b.frames.flatten(0, 1))) * len(b.labels)
            n += len(b.labels)
    metrics = {"val_attacker_ssim": s / max(n, 1), **{f"fit_{k}": v for k, v in fit.items()}}
    ctx.results["linear"] = {"clips": len(index), "metrics": metrics}
    ctx.save(ctx.ckpt_dir / "e_lin", lin, ctx.metadata("linear", metrics, trained_on=_trained_on(anonymizer),
                                                       fitted="closed-form least squares", clips=len(index)))
    return lin


# ---------------------------------------------------------------------------------------------- identity


def train_identity(ctx: Context, anonymizer: nn.Module | None) -> nn.Module:
    """Stage ``identity``: the direct identity attack's two towers on E_an's output (saved as two
    checkpoints); with ``anonymizer`` None, stage ``identity_raw``: the same towers, steps and batches (the
    same draws: one rng per step for both stages) on the raw events, the no-privacy reference."""
    from anonreid.models.evaluation.attacks import augment_crops

    ic = ctx.cfg.identity
    stage = "identity" if anonymizer is not None else "identity_raw"
    batch = identity_batch(ctx)
    towers = tower_names(raw=anonymizer is None)
    if anonymizer is not None:
        meta = _checked(ctx, stage)
        trained_on = _trained_on(anonymizer)
    else:  # not an attack on E_an: its budget is recorded, no rule applies
        meta = {"budget": Budget(towers[0], "identity", ic.steps, batch).as_dict()}
        trained_on = "raw events (no anonymizer: the no-privacy reference), training identities only"
    if ctx.photos is None:
        raise ValueError(f"stage {stage} needs the training identities' enrollment photos (a world with enrollment/)")
    seed_everything(ctx.cfg.seed + STAGES.index("identity"))
    att = build_identity_attacker(ic, ctx.cfg.data.num_bins, len(ctx.photos)).to(ctx.device)
    tiles_of = ctx.frozen_input(anonymizer)
    photos_all = ctx.photos.to(ctx.device)
    hw = (ic.crop_hw[0], ic.crop_hw[1])

    def step(i: int) -> tuple[torch.Tensor, dict[str, float]]:
        rng = ctx.rng("identity", i)
        b, _ = ctx.sample(rng, pk_index(rng, ctx.train.labels, ic.p, ic.k), False)
        tiles = tiles_of(b)
        clean = augment_crops(crop_boxes(b.frames[:, -1], b.boxes, hw).cpu(), rng).to(ctx.device)
        labels = ctx.photo_labels(b)
        photos, photo_labels = batch_photos(photos_all, labels, rng)
        return identity_loss(att, crop_boxes(tiles, b.boxes, hw), labels, photos, photo_labels, clean, labels)

    _run(ctx, stage, {"voxel": att.voxel, "photo": att.photo}, _optimizer([{"params": att.parameters()}], ic),
         step, lambda: {}, ic, batch)
    extra = {"temperature": ic.temperature, "crop_hw": list(hw), "trained_on": trained_on,
             "enrollment_day": ic.enrollment_day, "photo_days": ic.photo_days, **meta}
    base = ctx.metadata(stage, ctx.results[stage]["metrics"], **extra)
    kind = "anonymized" if anonymizer is not None else "raw"
    ctx.save(ctx.ckpt_dir / towers[0], att.voxel, {**base, "tower": f"{kind} voxel crops"})
    ctx.save(ctx.ckpt_dir / towers[1], att.photo, {**base, "tower": "enrollment photos / clean crops"})
    return att.eval()


def run_attack_stage(ctx: Context, stage: str) -> None:
    """Train one attack stage on the run's frozen anonymizer (``identity_raw``: on the raw events)."""
    if stage == "identity_raw":
        train_identity(ctx, None)
        return
    anonymizer = ctx.load("anonymizer")
    if stage == "inv":
        train_inversion(ctx, anonymizer, ctx.load("e_rec"))
    elif stage in ("adaptive", "finetune"):
        train_adaptive(ctx, stage, anonymizer)
    elif stage == "linear":
        train_linear(ctx, anonymizer, ctx.load("e_rec"))
    elif stage == "identity":
        train_identity(ctx, anonymizer)
    else:
        raise ValueError(f"{stage!r} is not an attack stage ({', '.join(ATTACK_STAGES)})")
