"""``anonreid bench train --json FILE``: training throughput (samples/s) of every stage.

Each stage of ``anonreid train`` runs for a few optimizer steps on clips of the preset's shapes
(random content: throughput depends on shapes, not values) and reports samples per second of the
training step alone (forward, backward, optimizer), plus the time one step takes. A sample is one clip
(``clip_len`` windows; for the ReId stages and the identity attack, one P x K member). The attack stages
run at least the steps the 3x budget rule requires against the briefly trained anonymizer
(:mod:`anonreid.models.budget`); the closed-form ``linear`` stage reports its fit time as ``step_s``.
``cpu_s_per_step`` is the CPU time the process spent per step (all threads): unlike ``step_s`` it does not
grow when other work shares the machine.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer


def main(
    json_path: Annotated[Path | None, typer.Option("--json", help="write the results here too")] = None,
    config: Annotated[str, typer.Option("--config", "-c", help="training preset or YAML")] = "cpu",
    steps: Annotated[int, typer.Option("--steps", help="optimizer steps timed per stage")] = 3,
    threads: Annotated[int, typer.Option("--threads", help="torch threads (0 = the preset's)")] = 0,
    device: Annotated[str, typer.Option("--device", help="auto | cpu | cuda")] = "auto",
) -> None:
    """Training samples/s per stage of the given preset."""
    import numpy as np
    import torch

    from anonreid.models.budget import required_samples
    from anonreid.models.config import load_train_config
    from anonreid.models.data import random_clips
    from anonreid.models.engine import resolve_device
    from anonreid.models.evaluation.attacks import AttackerCfg
    from anonreid.models.registry import create_model
    from anonreid.models.train import Context, train_reconstruction, train_reid
    from anonreid.models.train_attacks import (
        anonymizer_budgets,
        train_adaptive,
        train_identity,
        train_inversion,
        train_linear,
    )
    from anonreid.models.train_joint import train_joint

    trained = ("rec", "reid", "joint", "inv", "adaptive", "finetune", "identity")
    overrides = [f"{s}.steps={steps}" for s in trained] + [f"{s}.warmup=0" for s in trained]
    overrides += [f"device={device}", "eval_every=100000", "ckpt_every=100000"]
    if threads:
        overrides.append(f"threads={threads}")
    cfg = load_train_config(config, overrides)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    dev = resolve_device(cfg.device)
    train = random_clips(cfg.data, identities=max(cfg.reid.p, 4), per_identity=max(cfg.reid.k, 2))
    val = random_clips(cfg.data, identities=2, per_identity=2, seed=1)
    photos = torch.rand(train.num_classes, 1, 1, *cfg.identity.crop_hw)  # (classes, days, 1, h, w)
    app_cfg = AttackerCfg.from_config(cfg).appearance
    appearance = create_model(app_cfg.model, in_bins=1, embed_dim=app_cfg.embed_dim, crop_hw=app_cfg.crop_hw).eval()
    with tempfile.TemporaryDirectory() as tmp:
        ctx = Context(cfg, Path(tmp), train, val, np.arange(len(val)), "bench", dev, progress=False, photos=photos)
        rec = train_reconstruction(ctx, "rec")
        reid = train_reid(ctx)
        joint = train_joint(ctx, rec, reid)
        against = anonymizer_budgets(ctx)

        def sized(section: str, kind: str, batch: int) -> None:  # the 3x rule's minimum steps, at least --steps
            need = -(-required_samples(kind, against)[0] // batch)
            ctx.cfg = ctx.cfg.model_copy(update={section: getattr(ctx.cfg, section).model_copy(
                update={"steps": max(steps, need)})})

        for section in ("inv", "adaptive", "finetune"):
            sized(section, "reconstruction", getattr(cfg, section).batch_size)
        sized("identity", "identity", min(cfg.identity.p, train.num_classes) * cfg.identity.k)
        train_inversion(ctx, joint.anonymizer, rec, appearance)
        train_adaptive(ctx, "adaptive", joint.anonymizer)
        train_adaptive(ctx, "finetune", joint.anonymizer)
        t0, c0 = time.perf_counter(), time.process_time()
        train_linear(ctx, joint.anonymizer, rec)
        ctx.results["linear"].update(steps=1, step_s=time.perf_counter() - t0, cpu_s=time.process_time() - c0,
                                     batch_size=len(train), samples_per_s=len(train) / (time.perf_counter() - t0))
        train_identity(ctx, joint.anonymizer)
    stages = {
        name: {
            "samples_per_s": r["samples_per_s"],
            "step_s": round(r["step_s"] / max(r["steps"], 1), 3),
            "cpu_s_per_step": round(r["cpu_s"] / max(r["steps"], 1), 3),
            "batch_size": r["batch_size"],
            "steps": r["steps"],
        }
        for name, r in ctx.results.items()
    }
    result = {
        "bench": "train",
        "config": cfg.name,
        "device": str(dev) if dev.type == "cpu" else torch.cuda.get_device_name(0),
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "steps_timed": steps,
        "shapes": {"tile_hw": cfg.data.tile_hw, "crop_hw": cfg.data.crop_hw, "clip_len": cfg.data.clip_len},
        "models": {"rec": cfg.rec.model, "reid": cfg.reid.model, "anonymizer": cfg.joint.anonymizer,
                   "minmax": cfg.joint.minmax.enabled},
        "stages": stages,
    }
    text = json.dumps(result, indent=2)
    typer.echo(text)
    if json_path is not None:
        json_path.write_text(text + "\n")
