"""The direct identity attack: match anonymized voxels to photos of a person, with no reconstruction step.

Two towers of the ReId backbone (:mod:`anonreid.models.reid`): a *voxel tower* on person crops of
anonymized voxels (B bins) and a *photo tower* on grey person crops of clean images (enrollment photos,
reference frames). Both are trained on the training identities with

  * a cross-modal InfoNCE loss (cosine similarity / temperature): each anonymized crop must pick its
    identity's enrollment photo among the batch's photos, and each photo its identity's crops;
  * label-smoothing cross-entropy of each tower's classifier over the training identities (the photo
    tower also sees reference-frame crops of the batch's clips, so it learns appearance from more than
    one photo per person).

Embeddings are the L2-normalised pre-BNNeck features of each tower (:func:`tower_embedding`), in train
and eval mode alike, so both modalities share one space (each tower's BNNeck would rescale its own).

Used twice: the post-hoc attack (stage ``identity``, :mod:`anonreid.models.train_attacks`, evaluated
as enrollment photo -> anonymized crops rank-1 on the test identities) and the live identity attacker of
the min-max joint stage (:mod:`anonreid.models.minmax`), whose score :func:`identity_advantage` is what
E_an minimises.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from anonreid.models.config import IdentityCfg
from anonreid.models.data import crop_boxes
from anonreid.models.registry import create_model

VOXEL_TOWER, PHOTO_TOWER = "attack_id_voxel", "attack_id_photo"  # checkpoint names (stage identity)
RAW_VOXEL_TOWER, RAW_PHOTO_TOWER = "attack_id_raw_voxel", "attack_id_raw_photo"  # stage identity_raw (the reference)


def tower_names(raw: bool) -> tuple[str, str]:
    """The (voxel, photo) checkpoint names of stage ``identity``, or with ``raw`` of ``identity_raw``."""
    return (RAW_VOXEL_TOWER, RAW_PHOTO_TOWER) if raw else (VOXEL_TOWER, PHOTO_TOWER)


class IdentityAttacker(nn.Module):
    """The two towers (not a registered model: each tower is one, and is checkpointed on its own)."""

    def __init__(self, voxel: nn.Module, photo: nn.Module, temperature: float) -> None:
        super().__init__()
        self.voxel, self.photo, self.temperature = voxel, photo, temperature


def build_identity_attacker(cfg: IdentityCfg, in_bins: int, num_classes: int) -> IdentityAttacker:
    def tower(bins: int) -> nn.Module:
        return create_model(cfg.model, in_bins=bins, embed_dim=cfg.embed_dim, num_classes=num_classes,
                            crop_hw=tuple(cfg.crop_hw))

    return IdentityAttacker(tower(in_bins), tower(1), cfg.temperature)


def _features(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return net.embed(net.backbone(x))  # type: ignore[operator]


def tower_embedding(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """L2-normalised pre-BNNeck embedding of a tower (the shared cross-modal space)."""
    return F.normalize(_features(net, x).float(), dim=1)


def photo_input(crops: torch.Tensor) -> torch.Tensor:
    """[0, 1] grey crops -> the photo tower's input scale (the attacker nets' normalisation)."""
    from anonreid.models.evaluation.attacks import normalise_images

    return normalise_images(crops)


def voxel_crops(tiles: torch.Tensor, boxes: torch.Tensor, cfg: IdentityCfg) -> torch.Tensor:
    """Person crops of anonymized voxel tiles ``(N, B, h, w)`` for the voxel tower (differentiable)."""
    return crop_boxes(tiles, boxes, (cfg.crop_hw[0], cfg.crop_hw[1]))


def _match_logits(att: IdentityAttacker, v_emb: torch.Tensor, photo_emb: torch.Tensor) -> torch.Tensor:
    return v_emb @ photo_emb.t() / att.temperature


def _targets(labels: torch.Tensor, photo_labels: torch.Tensor) -> torch.Tensor:
    hit = labels[:, None] == photo_labels[None, :]
    if not bool(hit.any(1).all()):
        raise ValueError("every anonymized crop needs its identity's photo in the batch")
    return hit.float().argmax(1)


def identity_loss(
    att: IdentityAttacker, v_crops: torch.Tensor, labels: torch.Tensor, photos: torch.Tensor,
    photo_labels: torch.Tensor, clean: torch.Tensor | None = None, clean_labels: torch.Tensor | None = None,
    smoothing: float = 0.1,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The attacker's training loss on anonymized crops ``(N, B, h, w)`` with ``labels``, one photo per
    identity ``(P, 1, h, w)`` in [0, 1] with ``photo_labels``, and optional extra clean crops."""
    fv = _features(att.voxel, v_crops)
    clean_all = photos if clean is None else torch.cat([photos, clean])
    clean_y = photo_labels if clean_labels is None else torch.cat([photo_labels, clean_labels])
    fp_all = _features(att.photo, photo_input(clean_all))
    logits = _match_logits(att, F.normalize(fv.float(), dim=1), F.normalize(fp_all[: len(photos)].float(), dim=1))
    target = _targets(labels, photo_labels)
    v2p = F.cross_entropy(logits, target)
    pos = (photo_labels[:, None] == labels[None, :]).float()
    p2v = -(F.log_softmax(logits.t(), dim=1) * pos).sum(1).div(pos.sum(1).clamp_min(1)).mean()
    ce_v = F.cross_entropy(att.voxel.classifier(att.voxel.bnneck(fv)).float(), labels, label_smoothing=smoothing)  # type: ignore[operator]
    ce_p = F.cross_entropy(att.photo.classifier(att.photo.bnneck(fp_all)).float(), clean_y, label_smoothing=smoothing)  # type: ignore[operator]
    loss = v2p + p2v + ce_v + ce_p
    acc = float((logits.argmax(1) == target).float().mean())
    return loss, {"nce": float((v2p + p2v).detach()) / 2, "ce_voxel": float(ce_v.detach()),
                  "ce_photo": float(ce_p.detach()), "match_acc": acc}


def identity_advantage(att: IdentityAttacker, v_crops: torch.Tensor, labels: torch.Tensor, photos: torch.Tensor,
                       photo_labels: torch.Tensor, photo_emb: torch.Tensor | None = None) -> torch.Tensor:
    """How much better than chance the attacker matches anonymized crops to the batch's photos:
    ``relu(log P - CE) / log P`` (0 at chance or worse, 1 for certain matches), differentiable w.r.t.
    the crops; the attacker is used as it is (call it in eval mode for a fixed attacker)."""
    n_photos = len(photos)
    if n_photos < 2:
        return v_crops.sum() * 0.0
    if photo_emb is None:
        with torch.no_grad():
            photo_emb = tower_embedding(att.photo, photo_input(photos))
    logits = _match_logits(att, tower_embedding(att.voxel, v_crops), photo_emb)
    ce = F.cross_entropy(logits, _targets(labels, photo_labels))
    chance = math.log(n_photos)
    return F.relu(chance - ce) / chance


def photo_crops(photos: Sequence[np.ndarray], hw: tuple[int, int]) -> torch.Tensor:
    """Person crops ``(M, 1, h, w)`` in [0, 1] of enrollment photos (uint8 grey, plain wall behind)."""
    from anonreid.models.evaluation.attacks import image_crops, photo_person_box

    if not len(photos):
        return torch.zeros((0, 1, *hw))
    return torch.cat([image_crops(p[None], photo_person_box(p)[None], hw) for p in photos])


def batch_photos(photos: torch.Tensor, labels: torch.Tensor, rng: np.random.Generator | None = None,
                 augment: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """One photo per identity of ``labels`` (``photos`` ``(C, D, 1, h, w)`` indexed by class, D days each):
    with ``rng``, of a day drawn per identity and augmented like the attacker's nets' training crops;
    without, of the first day (``identity.enrollment_day``)."""
    uniq = torch.unique(labels)
    per_day = photos[uniq.to(photos.device)]
    if rng is not None and per_day.shape[1] > 1:  # (one day: no draw, so the augmentation's stream is as before)
        day = torch.from_numpy(rng.integers(0, per_day.shape[1], len(uniq))).to(per_day.device)
        crops = per_day[torch.arange(len(uniq), device=per_day.device), day].to(labels.device)
    else:
        crops = per_day[:, 0].to(labels.device)
    if augment and rng is not None:
        from anonreid.models.evaluation.attacks import augment_crops

        crops = augment_crops(crops.cpu(), rng).to(labels.device)
    return crops, uniq


@dataclass
class IdentityTowers:
    """The trained attack (stage ``identity``) as used on test or live data: embeddings of enrollment
    photos and of anonymized person crops in the shared space."""

    voxel: nn.Module
    photo: nn.Module
    crop_hw: tuple[int, int]
    metadata: dict

    @torch.no_grad()
    def photo_embeddings(self, photos: Sequence[np.ndarray]) -> torch.Tensor:
        """``(M, D)`` of enrollment photos (uint8 grey, plain wall behind), on the CPU."""
        device = next(self.photo.parameters()).device
        return tower_embedding(self.photo, photo_input(photo_crops(photos, self.crop_hw)).to(device)).cpu()

    @torch.no_grad()
    def voxel_embeddings(self, tiles: np.ndarray, boxes: np.ndarray, batch: int = 64) -> torch.Tensor:
        """``(N, D)`` of the person box of each anonymized window ``tiles (N, B, H, W)`` (E_an's output as
        it is), on the CPU."""
        device = next(self.voxel.parameters()).device
        out = []
        for i in range(0, len(tiles), batch):
            x = torch.from_numpy(np.asarray(tiles[i : i + batch], np.float32))
            crops = crop_boxes(x, torch.tensor(np.asarray(boxes[i : i + batch], np.float32)), self.crop_hw)
            out.append(tower_embedding(self.voxel, crops.to(device)).cpu())
        return torch.cat(out) if out else torch.zeros((0, 1))


def load_identity_towers(ckpt_dir: str | Path, device: str | torch.device = "cpu",
                         raw: bool = False) -> IdentityTowers | None:
    """The two towers from ``ckpt_dir`` (a run's ``checkpoints/`` or a flat weight set); None when the
    directory has no identity attack. ``raw``: the towers of stage ``identity_raw`` (raw events)."""
    from anonreid.models.checkpoint import load_checkpoint

    ckpt = Path(ckpt_dir)
    voxel_name, photo_name = tower_names(raw)
    if not (ckpt / f"{voxel_name}.json").exists():
        return None
    voxel = load_checkpoint(ckpt / voxel_name, device=device)
    photo = load_checkpoint(ckpt / photo_name, device=device)
    hw = voxel.metadata.get("crop_hw") or list(voxel.cfg.input_hw or (64, 32))
    return IdentityTowers(voxel.model.eval(), photo.model.eval(), (int(hw[0]), int(hw[1])), dict(voxel.metadata))
