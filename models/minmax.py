"""The min-max joint stage: E_an trained against attackers that keep adapting to it.

The joint stage with ``joint.minmax.enabled`` (:func:`anonreid.models.train.train_joint`) keeps, beside
E_an and E_reid, an :class:`AttackerPool`:

  * a *live reconstruction attacker* (a copy of the raw E_rec, or a fresh one), updated ``k`` =
    ``attacker_steps`` times per E_an step with E_rec's own loss on fresh batches of E_an's detached
    output -> reference frames;
  * a *live identity attacker* (:mod:`anonreid.models.identity_attack`: voxel and photo towers),
    updated ``k`` times per E_an step to match E_an's detached output to the training identities'
    enrollment photos;
  * every ``snapshot_every`` steps a frozen copy of each live attacker joins the pool (the oldest is
    dropped beyond ``pool_size``); the frozen raw E_rec is always a member of the reconstruction pool.

E_an's privacy term is the *worst score over the pool and the live attacker*, each measured relative
to its floor, per attacker kind, then summed with ``id_weight``:

  * reconstruction: person-region SSIM of the attacker's frames minus that of a flat grey image at the
    reference's mean (the floor), clamped at 0: beating the floor is all a reconstruction attacker
    gains; with ``face_weight`` w > 0, plus w x the same score on the face region (the head box of
    each person box, :func:`~anonreid.models.data.face_boxes`, where the evaluation cuts its face
    crops): the biometric cue that survives a change of clothes is the face, a tenth of the person
    region, so the person-region score alone barely weighs it; with ``face_id_weight`` > 0, plus that
    weight x the *face-identity* score under the defender's frozen face net (``face_guard``): the mean
    cosine similarity of each reconstructed face crop's embedding to its own reference face minus its
    mean similarity to the reference faces of the batch's other people, which is 0 in expectation for a
    reconstruction that says nothing about who it shows (SSIM measures pixels, not identity);
  * identity: :func:`~anonreid.models.identity_attack.identity_advantage`, the attacker's matching
    cross-entropy below chance (log P), as a fraction of chance, clamped at 0.

Every member is scored without gradients, and the gradient flows through the worst one only (the
max is attained there). The pool and both live attackers (with their optimizers) are saved with the
stage state (in ``state.pt``, :class:`PoolState`), so ``--resume`` continues with the same pool.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from anonreid.models.budget import Budget
from anonreid.models.config import IdentityCfg, MinmaxCfg
from anonreid.models.data import crop_boxes, face_boxes
from anonreid.models.engine import Hook, Trainer
from anonreid.models.identity_attack import (
    IdentityAttacker,
    batch_photos,
    identity_advantage,
    identity_loss,
    voxel_crops,
)
from anonreid.models.losses import box_masks, reconstruction_loss, region_ssim
from anonreid.models.reconstruction import run_sequence

log = logging.getLogger(__name__)


@contextmanager
def frozen(module: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and no parameter gradients inside the block (a live attacker scored for E_an)."""
    flags = [p.requires_grad for p in module.parameters()]
    was_training = module.training
    module.requires_grad_(False).eval()
    try:
        yield module
    finally:
        for p, f in zip(module.parameters(), flags, strict=True):
            p.requires_grad_(f)
        module.train(was_training)


def floor_region_ssim(frames: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Per-image person-region SSIM ``(N,)`` of a flat grey image at each reference frame's mean."""
    flat = frames.mean(dim=(-1, -2), keepdim=True).expand_as(frames)
    return region_ssim(flat, frames, masks)


class AttackerPool:
    """Live attackers, their optimizers and the pool of frozen snapshots (see the module docstring)."""

    def __init__(self, cfg: MinmaxCfg, raw_rec: nn.Module, live_rec: nn.Module, live_id: IdentityAttacker,
                 id_cfg: IdentityCfg, photos: torch.Tensor, identities: int | None = None,
                 face_net: tuple[nn.Module, tuple[int, int]] | None = None) -> None:
        self.cfg, self.id_cfg = cfg, id_cfg
        if cfg.face_id_weight > 0 and face_net is None:
            raise ValueError("joint.minmax.face_id_weight needs the defender's face net (face_net=)")
        self.face_net = (face_net[0].requires_grad_(False).eval(), face_net[1]) if face_net is not None else None
        self.identities = len(photos) if identities is None else identities  # (several photos each: outfit days)
        self.raw_rec = raw_rec.requires_grad_(False).eval()
        self.live_rec, self.live_id = live_rec, live_id
        self.photos = photos  # (photo classes, days, 1, h, w) enrollment-photo crops in [0, 1], by class index
        self.rec_opt = torch.optim.Adam(live_rec.parameters(), lr=cfg.rec_lr)
        self.id_opt = torch.optim.Adam(live_id.parameters(), lr=cfg.id_lr)
        self.rec_snaps: list[nn.Module] = []
        self.id_snaps: list[IdentityAttacker] = []
        self.updates = 0
        self.snapshots_taken = 0

    # ------------------------------------------------------------------------------------------ members

    def rec_members(self) -> list[tuple[str, nn.Module]]:
        snaps = [(f"snapshot{i}", m) for i, m in enumerate(self.rec_snaps)]
        return [("e_rec", self.raw_rec), *snaps, ("live", self.live_rec)]

    def id_members(self) -> list[tuple[str, IdentityAttacker]]:
        return [*((f"snapshot{i}", m) for i, m in enumerate(self.id_snaps)), ("live", self.live_id)]

    def snapshot(self) -> None:
        """Copy both live attackers into the pool (frozen, eval mode); drop the oldest beyond the size."""
        if self.cfg.pool_size == 0:
            return
        self.rec_snaps.append(copy.deepcopy(self.live_rec).requires_grad_(False).eval())
        self.id_snaps.append(copy.deepcopy(self.live_id).requires_grad_(False).eval())
        self.rec_snaps, self.id_snaps = self.rec_snaps[-self.cfg.pool_size :], self.id_snaps[-self.cfg.pool_size :]
        self.snapshots_taken += 1

    # ------------------------------------------------------------------------------------ attacker updates

    def update_rec(self, anonymized: torch.Tensor, frames: torch.Tensor, w: tuple[float, float, float]) -> dict[str, float]:
        """One step of the live reconstruction attacker on detached attacker-input clips ``(N, T, B, h, w)``."""
        self.live_rec.train()
        pred, _ = run_sequence(self.live_rec, anonymized.detach())
        loss, logs = reconstruction_loss(pred, frames, *w)
        self.rec_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.rec_opt.step()
        return {"live_rec_loss": float(loss.detach()), "live_rec_ssim": logs["ssim"]}

    def update_id(self, tiles: torch.Tensor, boxes: torch.Tensor, labels: torch.Tensor, clean: torch.Tensor,
                  rng: np.random.Generator) -> dict[str, float]:
        """One step of the live identity attacker on detached anonymized tiles ``(N, B, h, w)``; ``clean``
        are reference-frame crops of the same clips (extra photo-tower data)."""
        self.live_id.train()
        photos, photo_labels = batch_photos(self.photos, labels, rng)
        loss, logs = identity_loss(self.live_id, voxel_crops(tiles.detach(), boxes, self.id_cfg), labels, photos,
                                   photo_labels, clean, labels)
        self.id_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.id_opt.step()
        self.updates += 1
        return {"live_id_loss": float(loss.detach()), "live_id_match_acc": logs["match_acc"]}

    # --------------------------------------------------------------------------------------- privacy term

    def rec_scores(self, frames: torch.Tensor, boxes: torch.Tensor, labels: torch.Tensor | None = None,
                   ) -> list[tuple[str, float, Callable[[torch.Tensor], torch.Tensor]]]:
        """(name, weight, score) of each part of a reconstruction's privacy score: score maps the attacker's
        frames ``(k * w, 1, h, w)`` to how far they beat the part's floor. Parts: ``person`` (region SSIM
        over the person boxes ``(k, 4)``), with ``face_weight`` > 0 ``face`` (the same over their face
        boxes) and with ``face_id_weight`` > 0 ``face_id`` (:meth:`face_identity_score`; needs the clips'
        ``labels`` ``(k,)``)."""
        flat, hw, per_clip = frames.flatten(0, 1), tuple(frames.shape[-2:]), frames.shape[1]
        if self.cfg.face_weight > 0 or self.cfg.face_id_weight > 0:
            faces = torch.from_numpy(face_boxes(boxes.detach().cpu().numpy())).to(boxes.device)

        def region(b: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
            masks = box_masks(b, hw).repeat_interleave(per_clip, 0)  # type: ignore[arg-type]
            floor = floor_region_ssim(flat, masks).mean()
            return lambda pred: region_ssim(pred, flat, masks).mean() - floor

        parts: list[tuple[str, float, Callable[[torch.Tensor], torch.Tensor]]] = [("person", 1.0, region(boxes))]
        if self.cfg.face_weight > 0:
            parts.append(("face", self.cfg.face_weight, region(faces)))
        if self.cfg.face_id_weight > 0:
            if labels is None:
                raise ValueError("joint.minmax.face_id_weight: the privacy term needs the clips' labels")
            parts.append(("face_id", self.cfg.face_id_weight,
                          self.face_identity_score(flat, faces.repeat_interleave(per_clip, 0),
                                                   labels.repeat_interleave(per_clip, 0))))
        return parts

    def face_identity_score(self, frames: torch.Tensor, faces: torch.Tensor, labels: torch.Tensor,
                            ) -> Callable[[torch.Tensor], torch.Tensor]:
        """Frames ``(N, 1, h, w)`` -> mean over crops of (cosine similarity of the face embedding of a
        frame to that of its reference frame) - (its mean similarity to the reference faces of other
        people), under the defender's face net; 0 when the batch holds one person only."""
        from anonreid.models.evaluation.attacks import normalise_images

        assert self.face_net is not None
        net, hw = self.face_net

        def embed(images: torch.Tensor) -> torch.Tensor:
            return F.normalize(net(normalise_images(crop_boxes(images, faces, hw))).float(), dim=1)

        with torch.no_grad():
            ref = embed(frames)
        other = (labels[:, None] != labels[None, :]).float()
        if not bool(other.any()):
            return lambda pred: torch.zeros((), device=frames.device)

        def score(pred: torch.Tensor) -> torch.Tensor:
            sim = embed(pred) @ ref.t()
            strangers = (sim * other).sum(1) / other.sum(1).clamp_min(1.0)
            return (sim.diagonal() - strangers)[other.any(1)].mean()

        return score

    def rec_privacy(self, attacker_seq: torch.Tensor, frames: torch.Tensor, boxes: torch.Tensor,
                    labels: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """Worst reconstruction score over the pool on attacker-input clips ``(k, w, B, h, w)`` (with the
        gradient to E_an) against ``frames`` ``(k, w, 1, h, w)``; ``boxes`` ``(k, 4)`` of the last window,
        ``labels`` ``(k,)`` the clips' identities. A member's score is the sum over :meth:`rec_scores` of
        weight x (the part's score above its floor, clamped at 0); ties (all at 0) go to the member
        closest to the floor."""
        flat = frames.flatten(0, 1)
        regions = self.rec_scores(frames, boxes, labels)
        members = self.rec_members()

        def score(model: nn.Module, seq: torch.Tensor) -> list[torch.Tensor]:
            pred = run_sequence(model, seq)[0].flatten(0, 1)
            return [part(pred) for _, _, part in regions]

        def total(parts: list[torch.Tensor], clamp: bool = True) -> torch.Tensor:
            return sum((w * (torch.relu(p) if clamp else p) for (_, w, _), p in zip(regions, parts, strict=True)),
                       torch.zeros((), device=flat.device))

        with torch.no_grad():
            ranked = [(float(total(p)), float(total(p, clamp=False)))
                      for p in (score(m, attacker_seq.detach()) for _, m in members)]
        worst = max(range(len(members)), key=ranked.__getitem__)
        with frozen(members[worst][1]) as model:
            parts = score(model, attacker_seq)
            term = total(parts)
        logs = {"privacy_rec": float(term.detach()), "rec_worst": float(worst), "rec_pool": float(len(members))}
        for (name, _, _), p in list(zip(regions, parts, strict=True))[1:]:
            logs[f"privacy_{name}"] = float(torch.relu(p).detach())
        return term, logs

    def id_privacy(self, tiles: torch.Tensor, boxes: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Worst identity advantage over the pool on anonymized tiles ``(N, B, h, w)`` (with gradient)."""
        crops = voxel_crops(tiles, boxes, self.id_cfg)
        photos, photo_labels = batch_photos(self.photos, labels, augment=False)
        members = self.id_members()
        with torch.no_grad():
            scores = []
            for _, m in members:
                with frozen(m):
                    scores.append(float(identity_advantage(m, crops.detach(), labels, photos, photo_labels)))
        worst = int(np.argmax(scores))
        with frozen(members[worst][1]) as model:
            term = identity_advantage(model, crops, labels, photos, photo_labels)  # type: ignore[arg-type]
        return term, {"privacy_id": float(term.detach()), "id_worst": float(worst)}

    # ---------------------------------------------------------------------------------------- bookkeeping

    def budgets(self, steps: int, rec_budget: Budget | None) -> list[Budget]:
        """The live attackers' total training budgets over ``steps`` E_an steps (:func:`pool_budgets`)."""
        return pool_budgets(self.cfg, steps, rec_budget, self.identities)

    def state_dict(self) -> dict[str, Any]:
        return {
            "live_rec": self.live_rec.state_dict(), "live_id": self.live_id.state_dict(),
            "rec_opt": self.rec_opt.state_dict(), "id_opt": self.id_opt.state_dict(),
            "rec_snaps": [m.state_dict() for m in self.rec_snaps], "id_snaps": [m.state_dict() for m in self.id_snaps],
            "updates": self.updates, "snapshots_taken": self.snapshots_taken,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.live_rec.load_state_dict(state["live_rec"])
        self.live_id.load_state_dict(state["live_id"])
        self.rec_opt.load_state_dict(state["rec_opt"])
        self.id_opt.load_state_dict(state["id_opt"])

        def restore(template: nn.Module, states: list[dict[str, Any]]) -> list[Any]:
            out = []
            for s in states:
                m = copy.deepcopy(template)
                m.load_state_dict(s)
                out.append(m.requires_grad_(False).eval())
            return out

        self.rec_snaps = restore(self.live_rec, state["rec_snaps"])
        self.id_snaps = restore(self.live_id, state["id_snaps"])
        self.updates, self.snapshots_taken = state["updates"], state["snapshots_taken"]


class PoolState(Hook):
    """The pool in the stage's resumable state: it is one of the trainer's ``extras``, saved in the same
    ``state.pt`` as E_an and E_reid (one atomic file: a run stopped between two saves cannot resume with
    a pool of another step) and restored on ``--resume``; also takes the pool's snapshots every
    ``snapshot_every`` steps. Stage states written before the pool moved into ``state.pt`` are resumed
    from the ``pool.pt`` beside them when its step is the state's."""

    KEY = "pool"

    def __init__(self, pool: AttackerPool, stage_dir: Path) -> None:
        self.pool, self.legacy = pool, stage_dir / "pool.pt"

    def before_train(self, trainer: Trainer) -> None:
        trainer.extras[self.KEY] = self.pool
        if trainer.step == 0:  # nothing resumed: the pool starts as a fresh run's
            return
        if self.KEY in trainer.resumed_extras:
            self.pool.load_state_dict(trainer.resumed_extras[self.KEY])
            return
        state = torch.load(self.legacy, map_location=trainer.device, weights_only=False) if self.legacy.exists() else None
        if state is None or state["step"] != trainer.step:
            found = "none" if state is None else f"step {state['step']}"
            raise RuntimeError(f"{self.legacy.parent / 'state.pt'}: the stage state at step {trainer.step} holds no "
                               f"attacker pool and {self.legacy.name} has {found}: remove the stage directory "
                               "to train the stage again")
        self.pool.load_state_dict(state["pool"])

    def after_step(self, trainer: Trainer) -> None:
        if trainer.step % self.pool.cfg.snapshot_every == 0:
            self.pool.snapshot()


def pool_budgets(cfg: MinmaxCfg, steps: int, rec_budget: Budget | None, identities: int) -> list[Budget]:
    """The live attackers' total training budgets over ``steps`` E_an steps (init included); an identity
    batch has ``min(id_p, identities) x id_k`` crops (P x K sampling caps P at the identities there are)."""
    init = rec_budget.total if rec_budget is not None and cfg.init_rec_from_raw else 0
    return [
        Budget("live_rec", "reconstruction", steps * cfg.attacker_steps, cfg.rec_batch, "e_rec" if init else None, init),
        Budget("live_identity", "identity", steps * cfg.attacker_steps, min(cfg.id_p, identities) * cfg.id_k),
    ]
