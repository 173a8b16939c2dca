"""The privacy attacks, as a library: ``anonreid evaluate`` runs them offline on the world's test
identities, and the adversary node runs the same functions on samples streamed from the audit tap.

Every attack takes arrays (voxel clips, frames, boxes, identity and camera labels) and trained models,
and returns scores with their chance level (or floor) and a 95% interval that accounts for identities
(:mod:`anonreid.models.evaluation.intervals`: Clopper–Pearson for rank-1, clustered DeLong for AUC, the
identity bootstrap for means such as mAP and SSIM):

* **reconstruction** (:func:`reconstruct`, :func:`reconstruction_attack`): E_rec unrolled over voxel
  clips (raw, or what the attacker receives from E_an), SSIM / PSNR of its frames against the
  reference frames. The floor beside it is the score of a flat grey image at the reference's mean.
* **retrieval** (:func:`retrieval_attack`): the attacker's appearance ReId model (trained on clean
  reference-frame crops and enrollment photos of the *training* identities, :func:`train_attacker_net`)
  matches queries (enrollment photos, or crops of reconstructions from raw events) against galleries of
  crops of reconstructions; CMC rank-1/5/10 and mAP under the Market-1501 protocol, with the chance
  level of a random ranking on the same ids.
* **inversion** and **adaptive** attacks are reconstruction + retrieval on other views
  (:func:`attacker_views`): E_rec(E_inv(E_an(X))) and the adaptive E_rec' (trained on E_an(X)).
* **face verification** (:func:`face_verification_attack`): face crops (the top of the person box, its
  height from the world's ground-truth head ratio) of reference frames or reconstructions against the
  faces of the enrollment photos, scored by cosine similarity of a face-embedding net the attacker
  trains on the training identities' faces (or ArcFace, when a user supplies a TorchScript export of
  it: :func:`load_face_embedder`); ROC curve and AUC (chance 0.5).

Streaming use (the adversary node, on audit-tap samples of anonymized voxels ``anon (N, T, B, H, W)``,
reference frames ``ref (N, T, H, W)`` in [0, 1] where the world gives them, boxes and identities)::

    side = load_attacker_side(run_dir)                            # E_rec, E_inv, adaptive E_rec'
    views = anonymized_views(anon, side, anonymizer_cfg.output_range)
    score = reconstruction_attack(views["anonymized"], ref, groups=ids)
    acfg = AttackerCfg.from_config(load_train_config(run_dir / "config.yaml"))
    app = load_attacker_net(run_dir / "attacker", acfg.appearance)
    crops = image_crops(views["anonymized"][:, -1], boxes, acfg.appearance.crop_hw)
    r = retrieval_attack(app, enrollment_crops, enrollment_ids, ["enrollment"] * n, crops, ids, cams)
    r.rank1.value, r.chance["rank1"], (r.rank1.ci_low, r.rank1.ci_high)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from anonreid.models.evaluation.intervals import Estimate, auc_ci, bootstrap_ci, proportion_ci
from anonreid.models.evaluation.metrics import (
    RetrievalResult,
    chance_cmc_map,
    cmc_map,
    cosine_distance,
    person_region_scores,
    psnr,
    ssim,
)
from anonreid.models.evaluation.results import FaceScore, ReconstructionScore, RetrievalScore

if TYPE_CHECKING:
    from anonreid.models.config import TrainConfig

#: enrollment photos are shot against a plain wall of this grey level (render_enrollment: 0.72 linear)
ENROLLMENT_WALL = round(0.72 ** (1 / 2.2) * 255)

Views = dict[str, np.ndarray]


# ------------------------------------------------------------------------------------------- running models


def _batches(x: np.ndarray | torch.Tensor, batch: int) -> Any:
    """float32 tensors of consecutive slices (memory-mapped float16 clip arrays are read slice by slice)."""
    for i in range(0, len(x), batch):
        part = x[i : i + batch]
        yield part.float() if isinstance(part, torch.Tensor) else torch.from_numpy(np.asarray(part, np.float32))


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def anonymize(anonymizer: nn.Module, voxels: np.ndarray | torch.Tensor, batch: int = 32) -> torch.Tensor:
    """E_an over ``(N, B, H, W)`` or ``(N, T, B, H, W)`` voxels (CPU float32 tensor out, shape kept)."""
    device = _device(anonymizer)
    out = []
    for x in _batches(voxels, batch):
        flat = x.reshape(-1, *x.shape[-3:]).to(device)
        out.append(anonymizer(flat).float().cpu().view(*x.shape[:-3], -1, *x.shape[-2:]))
    return torch.cat(out) if out else torch.zeros(tuple(voxels.shape))


@torch.no_grad()
def reconstruct(
    rec: nn.Module, voxels: np.ndarray | torch.Tensor, transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    batch: int = 16,
) -> np.ndarray:
    """E_rec unrolled (from a zero state) over clips ``(N, T, B, H, W)`` -> frames ``(N, T, H, W)`` in [0, 1].

    ``transform`` maps each window's voxels before E_rec (e.g. :func:`attacker_input` of E_an's output).
    """
    from anonreid.models.reconstruction import run_sequence

    if len(voxels.shape) != 5:
        raise ValueError(f"reconstruct needs (N, T, B, H, W) clips, got shape {tuple(voxels.shape)}")
    device = _device(rec)
    out = []
    for part in _batches(voxels, batch):
        part = part.to(device)
        if transform is not None:
            part = transform(part.flatten(0, 1)).view(*part.shape[:2], -1, *part.shape[-2:])
        frames, _ = run_sequence(rec, part)
        out.append(frames[:, :, 0].float().cpu().numpy())
    _, t, _, h, w = voxels.shape
    return np.concatenate(out) if out else np.zeros((0, t, h, w), np.float32)


@dataclass
class AttackerSide:
    """The attacker's trained networks (``None`` where a run lacks one)."""

    e_rec: nn.Module
    e_inv: nn.Module | None = None
    e_rec_adaptive: nn.Module | None = None
    e_rec_finetuned: nn.Module | None = None  # the raw E_rec fine-tuned on anonymized events
    e_lin: nn.Module | None = None  # the closed-form linear inverse (the floor)


#: reconstruction views of the attacks on anonymized events -> the checkpoints they need
ATTACK_VIEWS = {"inversion": "e_inv", "adaptive": "e_rec_adaptive", "finetuned": "e_rec_finetuned", "linear": "e_lin"}


def load_attacker_side(run_dir: str | Path, device: str | torch.device = "cpu") -> AttackerSide:
    """E_rec and every attack network from ``RUN_DIR/checkpoints`` (those the run trained)."""
    from anonreid.models.checkpoint import load_checkpoint

    ckpt = Path(run_dir) / "checkpoints"

    def load(name: str) -> nn.Module | None:
        path = ckpt / name
        return load_checkpoint(path, device=device).model.eval() if path.with_suffix(".json").exists() else None

    e_rec = load("e_rec")
    if e_rec is None:
        raise FileNotFoundError(f"{ckpt}/e_rec.json: the run has no reconstruction attacker (stage rec)")
    return AttackerSide(e_rec, load("e_inv"), load("e_rec_adaptive"), load("e_rec_finetuned"), load("e_lin"))


def view_models(
    attacker: AttackerSide, output_range: str,
) -> dict[str, tuple[nn.Module, Callable[[torch.Tensor], torch.Tensor]]]:
    """Each view of the attacks on *anonymized* events -> (the reconstruction net, what it is given):
    ``anonymized`` = E_rec on E_an's output mapped into the voxel range E_rec was trained on
    (:func:`anonreid.models.anonymizer.to_voxel_range` of the anonymizer's ``output_range``),
    ``inversion`` = E_rec(E_inv(.)), ``linear`` = E_rec(linear inverse(.)), ``adaptive`` = the E_rec'
    trained on anonymized events from scratch, ``finetuned`` = the raw E_rec fine-tuned on them; a view
    whose network the attacker lacks is left out."""
    from anonreid.models.anonymizer import to_voxel_range

    def voxel_range(a: torch.Tensor) -> torch.Tensor:
        return to_voxel_range(a, output_range)

    candidates = {
        "anonymized": (attacker.e_rec, voxel_range),
        "inversion": (attacker.e_rec, attacker.e_inv),
        "linear": (attacker.e_rec, attacker.e_lin),
        "adaptive": (attacker.e_rec_adaptive, voxel_range),
        "finetuned": (attacker.e_rec_finetuned, voxel_range),
    }
    return {view: (rec, transform) for view, (rec, transform) in candidates.items()
            if rec is not None and transform is not None}


def anonymized_views(anonymized: np.ndarray | torch.Tensor, attacker: AttackerSide, output_range: str) -> Views:
    """What each attack (:func:`view_models`) reconstructs from *anonymized* clips ``(N, T, B, H, W)``
    (what the audit tap carries)."""
    return {view: reconstruct(rec, anonymized, transform)
            for view, (rec, transform) in view_models(attacker, output_range).items()}


def attacker_views(
    voxels: np.ndarray | torch.Tensor, attacker: AttackerSide, anonymizer: nn.Module | None, raw: bool = True,
    batch: int = 16,
) -> tuple[Views, np.ndarray | None]:
    """Reconstructions of every attack from raw clips ``(N, T, B, H, W)`` (``raw``: E_rec on the raw
    events, then :func:`anonymized_views` of E_an's output), processed ``batch`` clips at a time; also
    returns the anonymized last window of each clip ``(N, B, H, W)`` float16 (for E_reid), or None."""
    from anonreid.models.registry import model_cfg

    views: dict[str, list[np.ndarray]] = {}
    last: list[np.ndarray] = []
    for x in _batches(voxels, batch):
        part: Views = {"raw": reconstruct(attacker.e_rec, x, batch=batch)} if raw else {}
        if anonymizer is not None:
            anon = anonymize(anonymizer, x, batch=batch * x.shape[1])
            part.update(anonymized_views(anon, attacker, model_cfg(anonymizer).output_range))
            last.append(anon[:, -1].numpy().astype(np.float16))
        for k, v in part.items():
            views.setdefault(k, []).append(v)
    return {k: np.concatenate(v) for k, v in views.items()}, (np.concatenate(last) if last else None)


# ------------------------------------------------------------------------------------- reconstruction attack


#: the range of each reconstruction score (the bound an interval is widened to when it cannot vary)
SSIM_RANGE, PSNR_RANGE = (-1.0, 1.0), (0.0, 100.0)


def reconstruction_attack(
    pred: np.ndarray, reference: np.ndarray, groups: Sequence | np.ndarray | None = None, seed: int = 0,
    boxes: np.ndarray | None = None,
) -> ReconstructionScore:
    """SSIM / PSNR of predicted frames vs reference frames, both ``(N, H, W)`` or ``(N, T, H, W)`` in
    [0, 1]; a clip's score is the mean over its T frames, the CI resamples ``groups`` (identities).
    With ``boxes`` (``(N, 4)``, the person in each clip's last frame) also the person-region scores."""
    pred, reference = np.asarray(pred, np.float64), np.asarray(reference, np.float64)
    if pred.shape != reference.shape:
        raise ValueError(f"reconstructions {pred.shape} and reference frames {reference.shape} differ in shape")
    p = pred.reshape(len(pred), -1, *pred.shape[-2:])
    r = reference.reshape(len(reference), -1, *reference.shape[-2:])
    s = np.array([np.mean([ssim(a, b) for a, b in zip(pc, rc, strict=True)]) for pc, rc in zip(p, r, strict=True)])
    q = np.array([np.mean([min(psnr(a, b), 100.0) for a, b in zip(pc, rc, strict=True)]) for pc, rc in zip(p, r, strict=True)])
    flat = [(ssim(np.full_like(b, b.mean()), b), min(psnr(np.full_like(b, b.mean()), b), 100.0)) for b in r[:, -1]]
    floor = np.mean(flat, axis=0) if flat else np.array([np.nan, np.nan])
    person: dict[str, Estimate] = {}
    floors: dict[str, dict[str, float]] = {}
    if boxes is not None and len(p):
        region = person_region_scores(p[:, -1], r[:, -1], boxes)
        ok = np.isfinite(region["ssim"])
        g = None if groups is None else np.asarray(groups)[ok]
        person = {m: bootstrap_ci(region[m][ok], g, seed=seed, bounds=rng)
                  for m, rng in (("ssim", SSIM_RANGE), ("psnr", PSNR_RANGE))}
        floors = {f: {m: float(np.mean(region[f"{f}_{m}"][ok])) for m in ("ssim", "psnr")} for f in ("flat", "silhouette")}
    return ReconstructionScore(bootstrap_ci(s, groups, seed=seed, bounds=SSIM_RANGE),
                               bootstrap_ci(q, groups, seed=seed, bounds=PSNR_RANGE),
                               float(floor[0]), float(floor[1]), person, floors)


# ------------------------------------------------------------------------------------------ crops, embedding


def image_crops(images: np.ndarray | torch.Tensor, boxes: np.ndarray, out_hw: tuple[int, int]) -> torch.Tensor:
    """Grey images ``(N, H, W)`` in [0, 1] (or uint8) -> box crops ``(N, 1, h, w)`` resized to ``out_hw``."""
    from anonreid.models.data import crop_boxes

    arr = np.asarray(images)
    t = torch.from_numpy(arr.astype(np.float32) / (255.0 if arr.dtype == np.uint8 else 1.0))
    if len(t) == 0:
        return torch.zeros((0, 1, *out_hw))
    return crop_boxes(t[:, None], torch.from_numpy(np.array(boxes, np.float32)), out_hw)


def photo_person_box(photo: np.ndarray, tolerance: int = 10) -> np.ndarray:
    """The person's box ``(x1, y1, x2, y2)`` in an enrollment photo (pixels differing from the wall)."""
    mask = np.abs(np.asarray(photo, np.int32) - ENROLLMENT_WALL) > tolerance
    if not mask.any():
        return np.array([0, 0, photo.shape[1], photo.shape[0]], np.float32)
    ys, xs = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return np.array([xs[0], ys[0], xs[-1] + 1, ys[-1] + 1], np.float32)


def normalise_images(crops: torch.Tensor) -> torch.Tensor:
    """[0, 1] grey crops -> the attacker nets' input scale."""
    return (crops - 0.5) / 0.25


@torch.no_grad()
def embed(model: nn.Module | Callable[[torch.Tensor], torch.Tensor], crops: torch.Tensor, batch: int = 64,
          normalise: bool = True) -> np.ndarray:
    """L2-normalised embeddings ``(N, D)`` of crops (``model`` in eval mode; ``normalise`` for the
    attacker's own nets, whose input is :func:`normalise_images` of [0, 1] crops)."""
    if isinstance(model, nn.Module):
        model.eval()
        device = next(model.parameters()).device
    else:
        device = torch.device("cpu")
    out = []
    for i in range(0, len(crops), batch):
        x = crops[i : i + batch].float().to(device)
        out.append(F.normalize(model(normalise_images(x) if normalise else x).float(), dim=1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 1), np.float32)


# ------------------------------------------------------------------------------------------ retrieval / ReId


def retrieval_scores(
    q_emb: np.ndarray, q_ids: Sequence | np.ndarray, q_cams: Sequence | np.ndarray,
    g_emb: np.ndarray, g_ids: Sequence | np.ndarray, g_cams: Sequence | np.ndarray,
    seed: int = 0, outfits: tuple[np.ndarray, np.ndarray] | None = None,
) -> RetrievalScore:
    """Market-1501 CMC/mAP of cosine-distance rankings: rank-1 with its Clopper–Pearson interval (design
    effect over query identities), mAP with the identity bootstrap, and the exact chance levels; with
    ``outfits`` (query's, gallery's) the cloth-changing protocol (:func:`cmc_map`)."""
    q_ids = np.asarray(q_ids)
    qo, go = outfits if outfits is not None else (None, None)
    res = cmc_map(cosine_distance(q_emb, g_emb), q_ids, np.asarray(g_ids), q_cams, g_cams, q_outfits=qo, g_outfits=go)
    return ranking_scores(res, q_ids, q_cams, g_ids, g_cams, seed, outfits)


def ranking_scores(res: RetrievalResult, q_ids: np.ndarray, q_cams: Sequence | np.ndarray,
                   g_ids: Sequence | np.ndarray, g_cams: Sequence | np.ndarray, seed: int = 0,
                   outfits: tuple[np.ndarray, np.ndarray] | None = None) -> RetrievalScore:
    """:func:`retrieval_scores` of rankings already scored (``res``, of queries ``q_ids``)."""
    g_ids = np.asarray(g_ids)
    groups = q_ids[res.valid_query_index]
    qo, go = outfits if outfits is not None else (None, None)
    return RetrievalScore(
        rank1=proportion_ci(res.rank1_hit, groups),
        rank5=res.rank(5), rank10=res.rank(10),
        mAP=bootstrap_ci(res.ap, groups, seed=seed, bounds=(0.0, 1.0)),
        chance=chance_cmc_map(q_ids, g_ids, q_cams, g_cams, q_outfits=qo, g_outfits=go),
        num_queries=res.num_queries, num_queries_without_match=res.num_queries_without_match,
        num_gallery=len(g_ids),
    )


def retrieval_attack(
    model: nn.Module | Callable[[torch.Tensor], torch.Tensor],
    query_crops: torch.Tensor, q_ids: Sequence | np.ndarray, q_cams: Sequence | np.ndarray,
    gallery_crops: torch.Tensor, g_ids: Sequence | np.ndarray, g_cams: Sequence | np.ndarray, seed: int = 0,
) -> RetrievalScore:
    """The attacker's appearance model ranks gallery crops for each query crop (both ``(N, 1, h, w)``
    in [0, 1]); queries from another source than the gallery carry a camera label of their own."""
    return retrieval_scores(embed(model, query_crops), q_ids, q_cams, embed(model, gallery_crops), g_ids, g_cams,
                            seed=seed)


def one_per_identity_camera(ids: Sequence | np.ndarray, cams: Sequence | np.ndarray) -> np.ndarray:
    """Indices of one sample (the middle one, deterministic) per (identity, camera): the query set."""
    ids, cams = np.asarray(ids), np.asarray(cams)
    out = []
    for key in sorted(set(zip(ids.tolist(), cams.tolist(), strict=True))):
        members = np.flatnonzero((ids == key[0]) & (cams == key[1]))
        out.append(int(members[len(members) // 2]))
    return np.asarray(out, np.int64)


# ------------------------------------------------------------------------------------------- face verification


def roc_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false-positive rate, true-positive rate) over every distinct threshold, from (0, 0) to (1, 1)."""
    scores, labels = np.asarray(scores, np.float64).ravel(), np.asarray(labels, bool).ravel()
    pos, neg = int(labels.sum()), int((~labels).sum())
    if pos == 0 or neg == 0:
        raise ValueError(f"ROC needs genuine and impostor pairs, got {pos} and {neg}")
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # the end of each run of tied scores
    tps, fps = np.cumsum(y)[last], np.cumsum(~y)[last]
    return np.r_[0.0, fps / neg], np.r_[0.0, tps / pos]


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (trapezoidal, so tied scores count one half)."""
    fpr, tpr = roc_curve(scores, labels)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def face_verification_attack(
    probe_emb: np.ndarray, probe_ids: Sequence | np.ndarray, ref_emb: np.ndarray, ref_ids: Sequence | np.ndarray,
    seed: int = 0,
) -> FaceScore:
    """Every probe face against every enrolled face (cosine similarity): genuine pairs share the identity.
    The AUC's interval is the clustered DeLong one over probe identities
    (:func:`~anonreid.models.evaluation.intervals.auc_ci`)."""
    probe_ids, ref_ids = np.asarray(probe_ids), np.asarray(ref_ids)
    sim = 1.0 - cosine_distance(probe_emb, ref_emb)
    genuine = probe_ids[:, None] == ref_ids[None, :]
    fpr, tpr = roc_curve(sim, genuine)
    est = auc_ci(sim, genuine, np.broadcast_to(probe_ids[:, None], sim.shape))
    return FaceScore(est, fpr, tpr, int(genuine.sum()), int((~genuine).sum()))


def load_face_embedder(path: str | Path, input_hw: tuple[int, int] = (112, 112)) -> Callable[[torch.Tensor], torch.Tensor]:
    """A user-supplied face embedder (e.g. ArcFace) as a TorchScript file taking ``(N, 3, 112, 112)``
    images in [-1, 1]; returns a function of [0, 1] grey crops ``(N, 1, h, w)`` (nothing is downloaded)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: face-embedding weights not found (a TorchScript export is expected)")
    import warnings

    try:
        with warnings.catch_warnings():  # TorchScript is deprecated upstream, but it is what users export
            warnings.simplefilter("ignore", FutureWarning)
            net = torch.jit.load(str(path), map_location="cpu").eval()
    except RuntimeError as exc:
        raise ValueError(f"{path}: not a TorchScript module ({exc})") from None

    def run(crops: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(crops.float(), size=input_hw, mode="bilinear", align_corners=False)
        return net(x.repeat(1, 3, 1, 1) * 2 - 1)

    return run


# ------------------------------------------------------------------------------------------- attacker training


@dataclass(frozen=True)
class AttackerNetCfg:
    """One attacker embedding net (appearance ReId on person crops, or face embedding); the values come
    from the training config's ``attacker`` section (:meth:`AttackerCfg.from_config`)."""

    name: str  # checkpoint name under RUN_DIR/attacker/
    crop_hw: tuple[int, int]
    steps: int
    model: str
    embed_dim: int
    p: int
    k: int
    lr: float
    warmup: int
    seed: int
    augment: bool


@dataclass(frozen=True)
class AttackerCfg:
    appearance: AttackerNetCfg
    face: AttackerNetCfg

    @classmethod
    def from_config(cls, cfg: TrainConfig, steps: int | None = None) -> AttackerCfg:
        """The attacker nets of training config ``cfg``: its ``attacker`` section, or, for a run whose
        config.yaml predates that section, its preset's (``tiny``: nets sized for tests); ``steps``
        overrides both nets' step counts."""
        from anonreid.models.config import PRESETS, load_train_config

        section = cfg.attacker
        if "attacker" not in cfg.model_fields_set and cfg.name in PRESETS:
            section = load_train_config(cfg.name).attacker

        def net(name: str) -> AttackerNetCfg:
            args = getattr(section, name).model_dump()
            args["crop_hw"] = tuple(args["crop_hw"])
            if steps is not None:
                args["steps"] = steps
            return AttackerNetCfg(name, **args)

        return cls(net("appearance"), net("face"))


def augment_crops(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """What separates clean photos from reconstructions: contrast, brightness, blur; plus flips."""
    n = len(x)
    gain = torch.from_numpy(rng.uniform(0.6, 1.4, (n, 1, 1, 1)).astype(np.float32))
    bias = torch.from_numpy(rng.uniform(-0.15, 0.15, (n, 1, 1, 1)).astype(np.float32))
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = ((x - mean) * gain + mean + bias).clamp(0, 1)
    blur = torch.from_numpy(rng.random(n) < 0.5)
    if bool(blur.any()):
        smooth = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
        x = torch.where(blur[:, None, None, None], smooth, x)
    flip = torch.from_numpy(rng.random(n) < 0.5)
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def train_attacker_net(
    crops: torch.Tensor, labels: np.ndarray, cfg: AttackerNetCfg, out_dir: Path, device: torch.device | None = None,
    progress: bool = False, metadata: dict[str, Any] | None = None,
) -> nn.Module:
    """Train an embedding net on [0, 1] grey crops ``(M, 1, h, w)`` of the training identities with the
    ReId losses (label-smoothing CE + batch-hard triplet, P x K batches) through the project's
    :class:`~anonreid.models.engine.Trainer`; saves ``out_dir/<name>.{safetensors,json}``."""
    from anonreid.models.checkpoint import save_checkpoint
    from anonreid.models.data import pk_index
    from anonreid.models.engine import CosineLR, Logger, LossPlot, Trainer, seed_everything
    from anonreid.models.registry import create_model
    from anonreid.models.reid import ReidOutput, reid_loss

    device = device or torch.device("cpu")
    labels = np.asarray(labels, np.int64)
    num_classes = int(labels.max()) + 1 if len(labels) else 0
    if len(np.unique(labels)) < 2:
        raise ValueError(f"attacker net {cfg.name!r} needs at least 2 training identities, got {len(np.unique(labels))}")
    seed_everything(cfg.seed)
    model = create_model(cfg.model, in_bins=1, embed_dim=cfg.embed_dim, num_classes=num_classes, crop_hw=cfg.crop_hw)
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    y_all = torch.from_numpy(labels)

    def step(i: int) -> tuple[torch.Tensor, dict[str, float]]:
        rng = np.random.default_rng([cfg.seed, 0xA77, i])
        idx = pk_index(rng, labels, cfg.p, cfg.k)
        x = crops[idx].float()
        x = augment_crops(x, rng) if cfg.augment else x
        out = model(normalise_images(x).to(device))
        assert isinstance(out, ReidOutput)
        return reid_loss(out, y_all[idx].to(device))

    stage_dir = out_dir / "stages" / cfg.name
    stage_dir.mkdir(parents=True, exist_ok=True)
    (stage_dir / "log.jsonl").unlink(missing_ok=True)
    trainer = Trainer(f"attacker {cfg.name}", {cfg.name: model}, optimizer, step, cfg.steps,
                      [CosineLR(), Logger(stage_dir, 10, progress), LossPlot(stage_dir, f"attacker: {cfg.name}")], device)
    trainer.warmup = cfg.warmup  # type: ignore[attr-defined]
    trainer.batch_size = cfg.p * cfg.k
    trainer.run()
    model.eval()
    final = trainer.history[-1] if trainer.history else {}
    meta = {"stage": f"attacker_{cfg.name}", "attacker_cfg": {**cfg.__dict__, "crop_hw": list(cfg.crop_hw)},
            "train_samples": len(labels), "identities": num_classes,
            "final_loss": final.get("loss"), "wall_s": round(trainer.wall_s, 2), **(metadata or {})}
    save_checkpoint(out_dir / cfg.name, model, meta)
    return model


def load_attacker_net(
    out_dir: Path, cfg: AttackerNetCfg, device: torch.device | None = None, data_fingerprint: str | None = None,
    enrollment_day: int = 0, photo_days: int = 1, identities: int | None = None,
) -> nn.Module | None:
    """The checkpoint ``out_dir/<name>`` when it exists and matches ``cfg`` (crop size, embedding, steps),
    the enrollment photos' first day and count of days and, when given, the dataset it was trained on and
    the count of people it learned from; ``None`` otherwise (the caller trains a new one)."""
    from anonreid.models.checkpoint import load_checkpoint, read_sidecar

    path = out_dir / cfg.name
    if not path.with_suffix(".json").exists():
        return None
    meta = read_sidecar(path)["metadata"]
    saved = meta.get("attacker_cfg", {})
    if saved.get("crop_hw") != list(cfg.crop_hw) or saved.get("steps") != cfg.steps or saved.get("embed_dim") != cfg.embed_dim:
        return None
    if data_fingerprint is not None and meta.get("data_fingerprint") != data_fingerprint:
        return None
    if meta.get("enrollment_day", 0) != enrollment_day or meta.get("photo_days", 1) != photo_days:
        return None
    if identities is not None and meta.get("identities") != identities:
        return None
    return load_checkpoint(path, device=device or "cpu").model.eval()
