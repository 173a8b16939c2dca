"""``anonreid train``'s driver: runs the chosen stages in order, skips finished ones on ``--resume``, and
writes ``summary.json``. The stages themselves live below it (:mod:`anonreid.models.train` for the
context, E_rec and the raw ReId baseline; :mod:`~anonreid.models.train_joint` for E_an;
:mod:`~anonreid.models.train_attacks` for the attacks on the frozen E_an), so this module is the only
one that imports all of them and none of them imports it.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from anonreid.models.checkpoint import read_sidecar
from anonreid.models.config import DEFAULT_STAGES, STAGES, TrainConfig, stage_base, stage_section
from anonreid.models.sources import (
    EventReidSource,
    PairedH5Source,
    RealSource,
    TrainingDataError,
    check_real_data_config,
    source_stages,
)
from anonreid.models.train import (
    OUTPUTS,
    Context,
    _barrier,
    prepare_context,
    train_reconstruction,
    train_reid,
)
from anonreid.models.train_attacks import ATTACK_STAGES, check_budgets_up_front, run_attack_stage
from anonreid.models.train_joint import train_joint

log = logging.getLogger(__name__)


def _weights_tag(w: Sequence[float]) -> str:
    return "a{:g}_b{:g}_g{:g}".format(*w)


def _done(ctx: Context, stage: str, ckpt_dir: Path | None = None) -> bool:
    state = ctx.run_dir / "stages" / stage / "state.pt"
    outputs = [(ckpt_dir or ctx.ckpt_dir) / f"{n}.json" for n in OUTPUTS[stage_base(stage)]]
    if not (ctx.resume and all(p.exists() for p in outputs)):
        return False
    if stage == "reid_anon" and read_sidecar(outputs[0].with_suffix(""))["metadata"].get("stage") != stage:
        return False  # the joint stage's E_reid, not yet this stage's
    if state.exists():  # finished only when the state reached the configured step count
        logged = torch.load(state, map_location="cpu", weights_only=False)["step"]
        stage_cfg = getattr(ctx.cfg, stage_section(stage))
        return bool(logged >= stage_cfg.steps) or stage.startswith("joint_")
    return True


def run_training(
    data_dir: str | Path | RealSource,
    cfg: TrainConfig,
    run_dir: str | Path,
    stages: Sequence[str] | None = None,
    resume: bool = False,
    ablation: bool = False,
    progress: bool = True,
    command: str | None = None,
    rank: int = 0,
    world: int = 1,
    device: torch.device | None = None,
) -> dict[str, Any]:
    """Run the chosen stages (all by default; on real events, ``data_dir`` an :class:`EventReidSource`,
    ``reid`` and ``joint``; on paired events + frames, a :class:`PairedH5Source`, ``rec``, and the
    reconstruction attacks when it names an anonymizer) and return/write ``summary.json``.

    ``command`` is recorded in the run directory and every checkpoint (default: ``sys.argv``).
    """
    real = data_dir if isinstance(data_dir, EventReidSource | PairedH5Source) else None
    stages = list(stages or (source_stages(real) if real is not None else DEFAULT_STAGES))
    bad = [s for s in stages if s not in STAGES]
    if bad:
        raise ValueError(f"unknown stage(s) {bad}; stages are {', '.join(STAGES)}")
    if real is not None:
        check_real_data_config(cfg, [*stages, *(["joint"] if ablation else [])], real)
    if isinstance(real, PairedH5Source):
        through = [s for s in stages if s in ("finetune", "linear", "inv")]
        if through and "rec" not in stages and not (Path(run_dir) / "checkpoints" / "e_rec.json").exists():
            raise TrainingDataError(f"--stage {' --stage '.join(through)} on paired recordings starts from, or "
                                    f"reconstructs through, the run's own E_rec, and {run_dir}/checkpoints has none: "
                                    "add --stage rec (E_rec on these recordings)")
    t0 = time.perf_counter()
    ctx = prepare_context(data_dir, cfg, run_dir, resume, progress, command, rank, world, device)
    prep_s = time.perf_counter() - t0
    summary_path = ctx.run_dir / "summary.json"
    summary: dict[str, Any] = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    summary.setdefault("stages", {})
    summary.update({"preset": cfg.name, "data_fingerprint": ctx.fingerprint, "device": str(ctx.device),
                    "train_clips": len(ctx.train), "val_clips": len(ctx.val_index), "prepare_s": round(prep_s, 2)})

    def skip(stage: str, ckpt_dir: Path | None = None) -> bool:
        if _done(ctx, stage, ckpt_dir):
            log.info("stage %s already complete (--resume): skipped", stage)
            return True
        return False

    # the 3x rule, before the stages ahead of the attacks train (hours on a CPU)
    check_budgets_up_front(ctx, [s for s in stages if s in ATTACK_STAGES and not _done(ctx, s)],
                           lambda: "joint" in stages and not _done(ctx, "joint"))
    if "rec" in stages and not skip("rec"):
        train_reconstruction(ctx, "rec")
    if "reid" in stages and not skip("reid"):
        train_reid(ctx)
    if "joint" in stages and not skip("joint"):
        reid_raw = ctx.load("reid_raw") if cfg.joint.init_reid_from_raw else None
        train_joint(ctx, ctx.load("e_rec"), reid_raw)
    if ablation:
        main = (cfg.joint.alpha, cfg.joint.beta, cfg.joint.gamma)
        for w in cfg.ablation.settings:
            tag = _weights_tag(w)
            out = ctx.run_dir / "ablation" / tag / "checkpoints"
            steps = cfg.ablation.steps
            if tuple(w) == main and steps in (None, cfg.joint.steps) and (ctx.ckpt_dir / "anonymizer.json").exists():
                if not ctx.is_main:
                    continue
                out.mkdir(parents=True, exist_ok=True)
                for name in ("anonymizer", "reid"):
                    for suffix in (".safetensors", ".json"):
                        shutil.copy2(ctx.ckpt_dir / f"{name}{suffix}", out / f"{name}{suffix}")
                continue
            if skip(f"joint_{tag}", out):
                continue
            reid_raw = ctx.load("reid_raw") if cfg.joint.init_reid_from_raw else None
            train_joint(ctx, ctx.load("e_rec"), reid_raw, tuple(w), f"joint_{tag}", out, steps)  # type: ignore[arg-type]
    for stage in ATTACK_STAGES:  # the attacks, on the frozen anonymizer
        if stage in stages and not skip(stage):
            run_attack_stage(ctx, stage)
    if "reid_anon" in stages and not skip("reid_anon"):
        train_reid(ctx, ctx.load("anonymizer"))
    summary["stages"].update(ctx.results)
    summary["total_wall_s"] = round(time.perf_counter() - t0, 2)
    summary["workers"] = world
    if ctx.is_main:
        summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    _barrier(ctx)
    return summary
