"""``anonreid train``: the five training stages of the method, on the synthetic world (or stages 2-3 on
real events, Event-ReId: :mod:`anonreid.models.sources`, I = E_rec(X) there).

  1 ``rec``       E_rec (the attacker) on raw events -> reference frames: L1 + (1 - SSIM) + temporal
                  consistency, unrolled over clips of consecutive windows.
  2 ``reid``      the raw-event ReId baseline (alpha = beta = 0, no anonymizer): CE + triplet on P x K.
  3 ``joint``     E_an + E_reid against the frozen E_rec:
                  alpha (1 - SSIM(E_an(X), X)) + beta SSIM(E_rec(E_an(X)), I) + gamma L_reid;
                  with ``joint.minmax.enabled``, against a pool of attackers trained in the loop
                  (:mod:`anonreid.models.minmax`): beta x the worst privacy score over the pool.
  4-8             the attacks on the frozen E_an (``inv``, ``adaptive``, ``finetune``, ``linear``,
                  ``identity``), each with 3x the budget of any attacker of E_an's training:
                  :mod:`anonreid.models.train_attacks`.

Run directory layout (what ``anonreid evaluate`` and :func:`anonreid.models.bundle.load_model_bundle`
read)::

    RUN_DIR/config.yaml  env.json  command.txt  summary.json
    RUN_DIR/checkpoints/{e_rec, reid_raw, anonymizer, reid, e_inv, e_rec_adaptive, e_rec_finetuned, e_lin,
                         attack_id_voxel, attack_id_photo}.{safetensors,json}
    RUN_DIR/stages/<stage>/{log.jsonl, loss.png, state.pt (with the min-max joint's attacker pool)}
    RUN_DIR/ablation/a<alpha>_b<beta>_g<gamma>/checkpoints/{anonymizer, reid}.*   (``--ablation``)
    RUN_DIR/cache/<key>/*.npy    voxel clips shared by the stages

Every batch is drawn from ``np.random.default_rng([seed, stage, step])``, so runs are deterministic by
seed and ``--resume`` continues a stage with the same batches it would have seen.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import platform
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from anonreid.models.anonymizer import attacker_input
from anonreid.models.budget import Budget
from anonreid.models.checkpoint import load_checkpoint, read_sidecar, save_checkpoint
from anonreid.models.config import STAGES, OptimCfg, RecCfg, TrainConfig, stage_base
from anonreid.models.data import (
    Batch,
    ClipSet,
    build_clips,
    crop_boxes,
    jitter_boxes,
    pk_index,
    read_rows,
    uniform_index,
)
from anonreid.models.engine import (
    Checkpoint,
    CosineLR,
    Evaluate,
    Hook,
    Logger,
    LossPlot,
    Resume,
    Trainer,
    resolve_device,
    seed_everything,
)
from anonreid.models.frozen_output import anonymized_last_windows, cache_path
from anonreid.models.layers import ChannelAffine, fit_channel_affine
from anonreid.models.losses import reconstruction_loss, ssim
from anonreid.models.reconstruction import run_sequence, with_input_affine
from anonreid.models.registry import builder_args, create_model, model_cfg
from anonreid.models.reid import ReidOutput, reid_loss
from anonreid.orchestration.config import config_to_yaml

if TYPE_CHECKING:
    from anonreid.models.sources import RealSource

log = logging.getLogger(__name__)

T = TypeVar("T")

#: final checkpoint names per stage
OUTPUTS = {
    "rec": ["e_rec"],
    "reid": ["reid_raw"],
    "joint": ["anonymizer", "reid"],
    "inv": ["e_inv"],
    "adaptive": ["e_rec_adaptive"],
    "finetune": ["e_rec_finetuned"],
    "linear": ["e_lin"],
    "identity": ["attack_id_voxel", "attack_id_photo"],
    "identity_raw": ["attack_id_raw_voxel", "attack_id_raw_photo"],
    "reid_anon": ["reid"],  # (overwrites the joint stage's E_reid)
}


@dataclass
class Context:
    """Everything a stage needs: config, data, device, run directory."""

    cfg: TrainConfig
    run_dir: Path
    train: ClipSet
    val: ClipSet
    val_index: np.ndarray
    fingerprint: str
    device: torch.device
    resume: bool = False
    progress: bool = True
    command: str = ""
    rank: int = 0  # data-parallel rank (Ray Train); rank 0 writes logs and checkpoints
    world: int = 1
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    data_dir: Path | None = None  # the world (the attack stages train the attacker's nets on it)
    photos: torch.Tensor | None = None  # (photo classes, photo_days, 1, h, w) enrollment-photo crops of the training ids
    clip_days: np.ndarray | None = None  # a world filmed on several days: the day of every training clip
    identity_split: dict[str, list[str]] = field(default_factory=dict)  # real events: recorded in the checkpoints

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def sample(self, rng: np.random.Generator, index: np.ndarray, flip: bool) -> tuple[Batch, torch.Tensor | None]:
        """This rank's share of a global batch (and of its random flips), on the device."""
        flips = rng.random(len(index)) < 0.5 if flip else None
        part = slice(self.rank, None, self.world)
        batch = self.train.batch(index[part], self.device)
        return batch, (torch.from_numpy(flips[part]).to(self.device) if flips is not None else None)

    def photo_labels(self, b: Batch) -> torch.Tensor:
        """The row of ``photos`` that shows each clip's person: its identity's, or in a world filmed on
        several days (``clip_days``) its identity's on the clip's own day (the outfit it wears)."""
        if self.clip_days is None:
            return b.labels
        if b.index is None:
            raise ValueError("photo_labels needs the batch's clip rows (Batch.index)")
        assert self.photos is not None
        days = len(self.photos) // self.train.num_classes
        return b.labels * days + torch.from_numpy(self.clip_days[b.index]).to(b.labels.device)

    def save(self, name: Path, model: nn.Module, metadata: dict[str, Any]) -> None:
        if self.is_main:
            save_checkpoint(name, model, metadata, fp16=self.cfg.fp16_weights)

    @property
    def crop_hw(self) -> tuple[int, int]:
        return (self.cfg.data.crop_hw[0], self.cfg.data.crop_hw[1])

    @property
    def ckpt_dir(self) -> Path:
        return self.run_dir / "checkpoints"

    def rng(self, stage: str, step: int) -> np.random.Generator:
        return np.random.default_rng([self.cfg.seed, STAGES.index(stage_base(stage)), step])

    def metadata(self, stage: str, metrics: dict[str, float], **extra: Any) -> dict[str, Any]:
        return {
            "stage": stage,
            "preset": self.cfg.name,
            "config": self.cfg.model_dump(mode="json"),
            "seed": self.cfg.seed,
            "data_fingerprint": self.fingerprint,
            "metrics": metrics,
            **({"command": self.command} if self.command else {}),
            **({"identities": self.identity_split} if self.identity_split else {}),
            **extra,
        }

    def load(self, name: str, ckpt_dir: Path | None = None) -> nn.Module:
        _barrier(self)  # rank 0 may still be writing it
        path = (ckpt_dir or self.ckpt_dir) / name
        if not path.with_suffix(".json").exists():
            raise FileNotFoundError(f"{path}.json: stage output {name!r} is missing; run its stage first")
        model = load_checkpoint(path, device=self.device).model
        model.requires_grad_(False)
        return model.eval()

    def frozen_input(self, anonymizer: nn.Module | None) -> Callable[[Batch], torch.Tensor]:
        """The input tiles of a stage on a frozen anonymizer: each training sample's last window, through
        ``anonymizer`` when there is one; with ``cache_frozen_anonymizer`` read from its output computed
        once per clip (models/frozen_output.py), so a batch must be plain rows of ``self.train``."""
        if anonymizer is None:
            return lambda b: b.voxels[:, -1]
        frozen = anonymizer.requires_grad_(False).eval()
        if not self.cfg.cache_frozen_anonymizer:
            def forward(b: Batch) -> torch.Tensor:
                with torch.no_grad():
                    return frozen(b.voxels[:, -1])
            return forward
        key = f"{self.fingerprint}:train:{self.cfg.data.model_dump_json(exclude=self.cfg.data.cache_exclude())}"
        path = cache_path(self.run_dir / "cache", self.train, key, frozen)
        table = _rank0_first(self, lambda: anonymized_last_windows(self.train, frozen, path, self.device))

        def cached(b: Batch) -> torch.Tensor:
            if b.index is None:
                raise ValueError("cache_frozen_anonymizer: this batch is not plain rows of the training clips "
                                 "(flipped?), so the anonymizer's cached output does not apply to it")
            return torch.from_numpy(read_rows(table, b.index)).to(self.device)
        return cached


def _barrier(ctx: Context) -> None:
    if ctx.world > 1:
        import torch.distributed as dist

        dist.barrier()


def _rank0_first(ctx: Context, build: Callable[[], T]) -> T:
    """``build()`` on rank 0 first and then on the other data-parallel ranks: rank 0 writes a cache that
    the others then read."""
    for turn in ((0,) if ctx.world == 1 else (0, 1)):
        if ctx.is_main == (turn == 0):
            out = build()
        _barrier(ctx)
    return out


# ------------------------------------------------------------------------------------------ samplers


def flip_clips(batch: Batch, flip: torch.Tensor) -> Batch:
    """Mirror chosen clips left-right (voxels, frames and the box)."""
    if not bool(flip.any()):
        return batch
    f5 = flip[:, None, None, None, None]
    w = batch.voxels.shape[-1]
    boxes = batch.boxes.clone()
    boxes[flip, 0], boxes[flip, 2] = w - batch.boxes[flip, 2], w - batch.boxes[flip, 0]
    return Batch(
        torch.where(f5, batch.voxels.flip(-1), batch.voxels),
        torch.where(f5, batch.frames.flip(-1), batch.frames),
        boxes, batch.labels, batch.cameras,
    )


# ------------------------------------------------------------------------------------------- metrics


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    mse = F.mse_loss(pred.float(), target.float(), reduction="none").flatten(1).mean(1)
    return (10 * torch.log10(1.0 / mse.clamp_min(1e-10))).mean()


def cross_camera_rank1(emb: torch.Tensor, labels: torch.Tensor, cameras: torch.Tensor) -> float:
    """Fraction of samples whose nearest neighbour among other cameras has the same identity (a quick
    validation proxy; the Market-1501 CMC/mAP is ``anonreid evaluate``'s job)."""
    sim = emb @ emb.t()
    other_cam = cameras[:, None] != cameras[None, :]
    sim = sim.masked_fill(~other_cam, -float("inf"))
    has_match = ((labels[:, None] == labels[None, :]) & other_cam).any(1)
    if not has_match.any():
        return float("nan")
    best = sim.argmax(1)
    return float((labels[best] == labels)[has_match].float().mean())


def _val_batches(ctx: Context, size: int = 16) -> list[Batch]:
    return [ctx.val.batch(ctx.val_index[i : i + size], ctx.device) for i in range(0, len(ctx.val_index), size)]


def embed_crops(reid: nn.Module, tiles: torch.Tensor, boxes: torch.Tensor, crop_hw: tuple[int, int]) -> torch.Tensor:
    out = reid(crop_boxes(tiles, boxes, crop_hw))
    return out.float()


# ---------------------------------------------------------------------------------------------- stages


def _optimizer(params: list[dict[str, Any]], cfg: OptimCfg) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def _run(
    ctx: Context,
    stage: str,
    models: dict[str, nn.Module],
    optimizer: torch.optim.Optimizer,
    step_fn: Callable[[int], tuple[torch.Tensor, dict[str, float]]],
    eval_fn: Callable[[], dict[str, float]],
    ocfg: OptimCfg,
    batch_size: int,
    steps: int | None = None,
    extra_hooks: Callable[[Path], list[Hook]] | None = None,
) -> Trainer:
    """Run one stage through the :class:`Trainer` with the standard hooks; ``extra_hooks(stage_dir)``
    adds hooks right after :class:`Resume` (e.g. the min-max pool's state)."""
    stage_dir = ctx.run_dir / "stages" / stage
    if not ctx.resume and stage_dir.exists() and ctx.is_main:
        shutil.rmtree(stage_dir)
    stage_dir.mkdir(parents=True, exist_ok=True)
    _barrier(ctx)
    evaluate = Evaluate(eval_fn, ctx.cfg.eval_every)
    hooks: list[Hook] = [Resume(stage_dir, ctx.resume), *(extra_hooks(stage_dir) if extra_hooks else []), CosineLR(),
                         evaluate]
    if ctx.is_main:
        hooks += [
            Logger(stage_dir, ctx.cfg.log_every, ctx.progress),
            Checkpoint(stage_dir, ctx.cfg.ckpt_every),
            LossPlot(stage_dir, f"{ctx.cfg.name}: {stage}"),
        ]
    trainer = Trainer(stage, models, optimizer, step_fn, ocfg.steps if steps is None else steps, hooks, ctx.device, ctx.cfg.amp)
    trainer.warmup = ocfg.warmup  # type: ignore[attr-defined]
    trainer.world = ctx.world
    trainer.batch_size = batch_size
    resumed = ctx.resume and (stage_dir / "state.pt").exists()
    trainer.run()
    done_here = trainer.samples
    ctx.results[stage] = {
        "steps": trainer.steps,
        "batch_size": batch_size,
        "wall_s": round(trainer.wall_s, 2),
        "step_s": round(trainer.step_s, 2),
        "cpu_s": round(trainer.cpu_s, 2),
        "samples_per_s": round(done_here / trainer.step_s, 3) if trainer.step_s > 0 and done_here else None,
        "resumed": resumed,
        "metrics": evaluate.last,
    }
    return trainer


def train_reconstruction(
    ctx: Context, stage: str = "rec", anonymizer: nn.Module | None = None, init: nn.Module | None = None,
    extra_meta: dict[str, Any] | None = None,
) -> nn.Module:
    """Stage 1 (raw events), or an attack on the frozen ``anonymizer``'s output: ``adaptive`` (a fresh
    E_rec) and ``finetune`` (a copy of ``init``, the raw E_rec); the stage's config section sizes it."""
    rcfg: RecCfg = getattr(ctx.cfg, stage)
    seed_everything(ctx.cfg.seed + STAGES.index(stage))
    standardise = anonymizer is not None and "input_affine" in builder_args(
        model_cfg(init).name if init is not None else rcfg.model)
    if init is not None:  # a copy of the raw E_rec (plus its fitted input layer when the attack standardises)
        rec = ((with_input_affine(init) if standardise else None) or copy.deepcopy(init)).requires_grad_(True).to(ctx.device)
    else:
        args = {**rcfg.model_args, **({"input_affine": True} if standardise else {})}
        rec = create_model(rcfg.model, in_bins=ctx.cfg.data.num_bins, **args).to(ctx.device)

    def inputs(voxels: torch.Tensor) -> torch.Tensor:
        if anonymizer is None:
            return voxels
        with torch.no_grad():
            a = anonymizer(voxels.flatten(0, 1))
            return attacker_input(a, model_cfg(anonymizer)).view_as(voxels)

    fitted: dict[str, Any] = {}
    if standardise:  # each input channel gets the raw voxels' mean and spread (ChannelAffine's docstring)
        rng = ctx.rng(stage, rcfg.steps)  # a step the training loop never draws
        b, _ = ctx.sample(rng, uniform_index(rng, len(ctx.train), min(len(ctx.train), 64)), False)
        affine = rec.input_affine
        assert isinstance(affine, ChannelAffine)
        fitted = fit_channel_affine(affine, inputs(b.voxels).flatten(0, 1), b.voxels.flatten(0, 1))

    def step(i: int) -> tuple[torch.Tensor, dict[str, float]]:
        rng = ctx.rng(stage, i)
        b, flip = ctx.sample(rng, uniform_index(rng, len(ctx.train), rcfg.batch_size), True)
        b = flip_clips(b, flip) if flip is not None else b
        pred, _ = run_sequence(rec, inputs(b.voxels))
        return reconstruction_loss(pred, b.frames, rcfg.w_l1, rcfg.w_ssim, rcfg.w_tc)

    def evaluate() -> dict[str, float]:
        s, p, n = 0.0, 0.0, 0
        for b in _val_batches(ctx):
            pred, _ = run_sequence(rec, inputs(b.voxels))
            s += float(ssim(pred.flatten(0, 1), b.frames.flatten(0, 1))) * len(b.labels)
            p += float(psnr(pred.flatten(0, 1), b.frames.flatten(0, 1))) * len(b.labels)
            n += len(b.labels)
        return {"ssim": s / n, "psnr": p / n}

    trainer = _run(ctx, stage, {"rec": rec}, _optimizer([{"params": rec.parameters()}], rcfg), step, evaluate,
                   rcfg, rcfg.batch_size)
    name = OUTPUTS[stage][0]
    trained_on = "raw" if anonymizer is None else f"anonymized by {model_cfg(anonymizer).name}"
    budget = {"budget": Budget(name, "reconstruction", rcfg.steps, rcfg.batch_size).as_dict()}
    ctx.save(ctx.ckpt_dir / name, rec, ctx.metadata(stage, ctx.results[stage]["metrics"], trained_on=trained_on,
                                                    **(extra_meta or budget),
                                                    **({"input_affine": fitted} if fitted else {})))
    del trainer
    return rec.eval()


def rec_budget(ctx: Context) -> Budget:
    """The raw E_rec's training budget, from its checkpoint (or the config when it has none recorded)."""
    path = ctx.ckpt_dir / "e_rec"
    if path.with_suffix(".json").exists():
        recorded = read_sidecar(path)["metadata"].get("budget")
        if recorded:
            return Budget.from_dict(recorded)
    return Budget("e_rec", "reconstruction", ctx.cfg.rec.steps, ctx.cfg.rec.batch_size)


def _new_reid(ctx: Context) -> nn.Module:
    rc = ctx.cfg.reid
    return create_model(
        rc.model, in_bins=ctx.cfg.data.num_bins, embed_dim=rc.embed_dim, num_classes=ctx.train.num_classes,
        crop_hw=ctx.crop_hw, pretrained=rc.pretrained, flip_test=rc.flip_test,
    ).to(ctx.device)


def _reid_eval(ctx: Context, reid: nn.Module, transform: Callable[[torch.Tensor], torch.Tensor] | None = None) -> float:
    embs, labels, cams = [], [], []
    for b in _val_batches(ctx):
        tiles = b.voxels[:, -1] if transform is None else transform(b.voxels[:, -1])
        embs.append(embed_crops(reid, tiles, b.boxes, ctx.crop_hw))
        labels.append(b.labels)
        cams.append(b.cameras)
    return cross_camera_rank1(torch.cat(embs), torch.cat(labels), torch.cat(cams))


def start_reid_from(reid: nn.Module, source: nn.Module) -> bool:
    """Copy ``source``'s weights into ``reid`` (the same architecture); the classifier only when both
    have the same number of people, else ``reid`` keeps its own fresh one. Returns whether the
    classifier is new."""
    state = source.state_dict()
    new_head = state["classifier.weight"].shape != reid.state_dict()["classifier.weight"].shape
    if new_head:
        del state["classifier.weight"]  # other people: this run's own (fresh) classifier
    reid.load_state_dict(state, strict=not new_head)
    return new_head


def _load_init(model: nn.Module, path: Path, key: str, device: torch.device,
               free: tuple[str, ...] = ()) -> nn.Module:
    """The checkpoint at ``path`` (config key ``key``, named in the error) for ``model`` to start from: the
    same architecture and parameters, but for those in ``free`` (which do not change the weights' shapes
    that are kept)."""
    loaded = load_checkpoint(path, device=device)
    mine = model_cfg(model)
    want, theirs = dict(mine.params), dict(loaded.cfg.params)
    differs = {k: (v, theirs.get(k)) for k, v in want.items() if k not in free and theirs.get(k) != v}
    if mine.name != loaded.cfg.name or differs:
        raise ValueError(f"{key}: {path} is a {loaded.cfg.name} {theirs}, this run trains a {mine.name} {want}; "
                         f"differs: {differs or 'the model'}")
    return loaded.model


def _init_reid(reid: nn.Module, path: Path, device: torch.device) -> None:
    """Start ``reid`` from the checkpoint at ``path`` (``reid.init``): the same architecture (model, bins,
    embedding size, crop); the classifier is kept only when its number of classes matches."""
    # neither the number of classes nor flip_test changes the trunk's weights
    source = _load_init(reid, path, "reid.init", device, free=("num_classes", "flip_test"))
    new_head = start_reid_from(reid, source)
    log.info("reid.init: started from %s%s", path, " (a new classifier)" if new_head else "")


def init_anonymizer(anonymizer: nn.Module, path: Path, device: torch.device) -> None:
    """Start ``anonymizer`` from the checkpoint at ``path`` (``joint.init``): the same architecture."""
    anonymizer.load_state_dict(_load_init(anonymizer, path, "joint.init", device).state_dict())
    log.info("joint.init: E_an started from %s", path)


def train_reid(ctx: Context, anonymizer: nn.Module | None = None) -> nn.Module:
    """Stage ``reid``: the no-privacy ReId baseline on raw event crops (``reid_raw``). With ``anonymizer``,
    stage ``reid_anon``: E_reid alone on the frozen anonymizer's output (``reid``), from ``reid_raw``
    when ``joint.init_reid_from_raw`` and the run has one. E_an is not touched (eval mode, no gradient,
    not saved), so every privacy number measured on it still holds; the ReId may learn from a wider
    world than the one E_an was trained on."""
    stage = "reid" if anonymizer is None else "reid_anon"
    rc = ctx.cfg.reid
    seed_everything(ctx.cfg.seed + STAGES.index(stage))
    reid = _new_reid(ctx)
    tiles_of = ctx.frozen_input(anonymizer)
    if rc.init:
        _init_reid(reid, Path(rc.init), ctx.device)
    elif anonymizer is not None and ctx.cfg.joint.init_reid_from_raw and (ctx.ckpt_dir / "reid_raw.json").exists():
        start_reid_from(reid, ctx.load("reid_raw"))
    crop_hw = ctx.crop_hw

    def step(i: int) -> tuple[torch.Tensor, dict[str, float]]:
        rng = ctx.rng(stage, i)
        b, flip = ctx.sample(rng, pk_index(rng, ctx.train.labels, rc.p, rc.k), rc.flip)
        boxes = jitter_boxes(b.boxes, rc.box_jitter, rng, b.voxels.shape[-2:])
        out = reid(crop_boxes(tiles_of(b), boxes, crop_hw, flip))
        assert isinstance(out, ReidOutput)
        return reid_loss(out, b.labels, rc.smoothing, rc.margin)

    def evaluate() -> dict[str, float]:
        return {"rank1": _reid_eval(ctx, reid, anonymizer)}

    _run(ctx, stage, {"reid": reid}, _optimizer([{"params": reid.parameters()}], rc), step, evaluate, rc, rc.p * rc.k)
    if anonymizer is None:
        ctx.save(ctx.ckpt_dir / "reid_raw", reid, ctx.metadata(stage, ctx.results[stage]["metrics"], trained_on="raw"))
    else:
        trained_on = f"anonymized by the frozen {model_cfg(anonymizer).name} (checkpoints/anonymizer, unchanged)"
        ctx.save(ctx.ckpt_dir / "reid", reid, ctx.metadata(stage, ctx.results[stage]["metrics"], trained_on=trained_on))
    return reid.eval()


# ----------------------------------------------------------------------------------------------- driver


def _write_run_files(run_dir: Path, cfg: TrainConfig, device: torch.device, data_dir: Path, command: str) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(config_to_yaml(cfg))
    (run_dir / "command.txt").write_text(command + "\n")
    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": str(device),
        "cuda": torch.cuda.get_device_name(0) if device.type == "cuda" else None,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "data_dir": str(data_dir),
    }
    (run_dir / "env.json").write_text(json.dumps(env, indent=2) + "\n")


def prepare_context(
    data_dir: str | Path | RealSource, cfg: TrainConfig, run_dir: str | Path, resume: bool = False,
    progress: bool = True, command: str | None = None, rank: int = 0, world: int = 1, device: torch.device | None = None,
) -> Context:
    """Open the world (or the Event-ReId root of an :class:`~anonreid.models.sources.EventReidSource`, or the
    paired recordings of a :class:`~anonreid.models.sources.PairedH5Source`: :mod:`anonreid.models.sources`),
    build (or reuse) the cached clips, set threads/seed/device.

    With several data-parallel ranks, rank 0 builds the clip cache and the others then map it.
    """
    from anonreid.models.sources import install_frozen, open_training_data

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = device or resolve_device(cfg.device)
    run_dir = Path(run_dir)
    data = open_training_data(data_dir, cfg)
    cfg = data.cfg  # real events: single-window clips
    cache = run_dir / "cache"
    val_ids = set(data.val_ids)
    n_val_passes = max(1, sum(1 for p in data.val_set.passes if p.identity in val_ids))
    per_pass = max(1, math.ceil(cfg.data.val_clips / n_val_passes))
    ctx = Context(cfg, run_dir, None, None, np.zeros(0, np.int64), data.fingerprint, device, resume,  # type: ignore[arg-type]
                  progress and rank == 0, command or " ".join(sys.argv), rank, world)
    key = {s: f"{data.fingerprint}:{split}" for s, split in data.splits.items()}

    def clips() -> tuple[ClipSet, ClipSet]:
        train = build_clips(data.train_set, data.train_ids, cfg.data, cache, key.get("train", data.fingerprint),
                            progress=ctx.progress)
        val = build_clips(data.val_set, data.val_ids, cfg.data, cache, key.get("val", data.fingerprint),
                          max_clips_per_pass=per_pass, progress=ctx.progress)
        return data.with_reference(train, cache, device), data.with_reference(val, cache, device)

    ctx.train, ctx.val = _rank0_first(ctx, clips)
    ctx.val_index = np.unique(np.linspace(0, len(ctx.val) - 1, min(cfg.data.val_clips, len(ctx.val))).round().astype(int))
    ctx.data_dir = data.path if data.world is not None else None
    ctx.identity_split = data.identity_split()
    photo_hw = (cfg.identity.crop_hw[0], cfg.identity.crop_hw[1])
    outfits = data.outfit_photos(ctx.train.identities, photo_hw, ctx.train, cfg.identity.enrollment_day,
                                 cfg.identity.photo_days)
    if outfits is not None:
        ctx.photos, ctx.clip_days = outfits
    else:
        ctx.photos = data.photos(ctx.train.identities, photo_hw, cfg.identity.enrollment_day, cfg.identity.photo_days)
    if ctx.is_main:
        _write_run_files(run_dir, cfg, device, data.path, ctx.command)
        install_frozen(data, ctx.ckpt_dir)
    return ctx
