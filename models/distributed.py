"""Data-parallel training through Ray Train (``anonreid train --workers N [--ray-address ...]``).

A :class:`ray.train.torch.TorchTrainer` starts ``N`` workers (one GPU each when the cluster has GPUs,
CPU processes with the gloo backend otherwise); torch.distributed is initialised by Ray Train. Every
worker runs :func:`anonreid.models.pipeline.run_training` with its rank: each step draws the same global
batch from the step's seeded generator, takes its ``rank::world`` share, and gradients are averaged
across workers before the optimizer step (:func:`anonreid.models.engine.average_gradients`), so the
result matches the single-process run's batch composition. Rank 0 builds the clip cache, writes logs,
checkpoints and ``summary.json``; the run directory must be on storage every worker can reach (a
shared volume on a cluster).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from anonreid.models.config import TrainConfig


def _worker_loop(config: dict[str, Any]) -> None:
    import ray.train
    import ray.train.torch

    from anonreid.models.pipeline import run_training

    ctx = ray.train.get_context()
    cfg = TrainConfig.model_validate(config["cfg"])
    run_training(
        config["data"], cfg, config["out"], config["stages"], resume=config["resume"], ablation=config["ablation"],
        progress=False, command=config["command"], rank=ctx.get_world_rank(), world=ctx.get_world_size(),
        device=ray.train.torch.get_device(),
    )


def run_distributed(
    data: Path, cfg: TrainConfig, out: Path, stages: Sequence[str] | None, resume: bool, ablation: bool,
    workers: int, ray_address: str = "", command: str = "",
) -> dict[str, Any]:
    """Run the training stages on ``workers`` Ray Train workers; returns the run's ``summary.json``."""
    import ray
    import torch
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from anonreid.orchestration.config import RayConfig
    from anonreid.orchestration.ray_cluster import start_ray

    if workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    started_here = not ray.is_initialized()
    if started_here:
        start_ray(RayConfig(address=ray_address, num_cpus=0))
    use_gpu = bool(ray.cluster_resources().get("GPU", 0)) or torch.cuda.is_available()
    out = Path(out).resolve()
    trainer = TorchTrainer(
        _worker_loop,
        train_loop_config={
            "cfg": cfg.model_dump(mode="json"), "data": str(Path(data).resolve()), "out": str(out),
            "stages": list(stages) if stages else None, "resume": resume, "ablation": ablation, "command": command,
        },
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=use_gpu,
                                     resources_per_worker=None if use_gpu else {"CPU": 1}),
        run_config=RunConfig(name="anonreid-train", storage_path=str(out / "ray")),
    )
    try:
        trainer.fit()
    finally:
        if started_here:
            ray.shutdown()
    summary: dict[str, Any] = json.loads((out / "summary.json").read_text())
    return summary
