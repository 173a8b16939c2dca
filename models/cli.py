"""``anonreid train``: the CLI front of :mod:`anonreid.models.train` (torch is imported inside)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from anonreid.orchestration.cli_common import SensorOption, TimeUnitOption, check_event_file_options


def train(
    data: Annotated[Path, typer.Option("--data", help="world dataset directory (world.json + world.h5)")],
    out: Annotated[Path, typer.Option("--out", help="run directory (created)")],
    config: Annotated[str, typer.Option("--config", "-c", help="preset tiny | cpu | minmax | paper, or a YAML path")] = "tiny",
    stage: Annotated[
        list[str] | None, typer.Option("--stage", help="rec | reid | joint | inv | adaptive | finetune | linear | identity "
                                     "(repeatable; default all)")
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="skip finished stages, continue a partial one")] = False,
    ablation: Annotated[bool, typer.Option("--ablation", help="also train the loss-ablation settings (Table 5)")] = False,
    workers: Annotated[int, typer.Option("--workers", help="data-parallel workers through Ray Train (GPUs)")] = 1,
    ray_address: Annotated[str, typer.Option("--ray-address", help="Ray cluster to run the workers on")] = "",
    set_: Annotated[list[str] | None, typer.Option("--set", help="override: key.path=value (repeatable)")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="show progress bars")] = True,
    time_unit: TimeUnitOption = "",
    sensor: SensorOption = "",
) -> None:
    """Train E_rec, the raw ReId baseline, E_an + E_reid jointly (min-max with ``joint.minmax``), then the
    attacks on the frozen E_an (inversion, adaptive, fine-tuned, linear inverse, direct identity)."""
    import json

    from anonreid.models.config import load_train_config
    from anonreid.orchestration.config import ConfigError

    parts = ["anonreid train", f"--data {data}", f"--config {config}", f"--out {out}"]
    parts += [f"--stage {s}" for s in stage or []] + [f"--set {s}" for s in set_ or []]
    parts += ["--resume"] * resume + ["--ablation"] * ablation + ([f"--workers {workers}"] if workers > 1 else [])
    time_unit, sensor = check_event_file_options(time_unit, sensor)
    parts += [f"--time-unit {time_unit}"] * bool(time_unit) + [f"--sensor {sensor}"] * bool(sensor)
    command = " ".join(parts)
    try:
        cfg = load_train_config(config, set_ or [])
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if not (data / "world.json").exists():
        typer.echo(f"error: --data {data}: no world.json (create one with `anonreid world simulate`)", err=True)
        raise typer.Exit(2)
    if time_unit or sensor:  # as for the formats that record them (.raw, .dat, AEDAT4): said, not used
        typer.echo(f"warning: --data {data} is a world dataset, which records its time unit (us) and sensor size "
                   "(world.json); --time-unit / --sensor are for event files that do not, and are not used for it",
                   err=True)
    from anonreid.models.budget import AttackBudgetError

    try:
        if workers > 1 or ray_address:
            from anonreid.models.distributed import run_distributed

            summary = run_distributed(data, cfg, out, stage, resume, ablation, workers, ray_address, command)
        else:
            from anonreid.models.pipeline import run_training

            summary = run_training(data, cfg, out, stage, resume=resume, ablation=ablation, progress=progress,
                                   command=command)
    except AttackBudgetError as exc:  # an attack too weak to judge privacy by: refused before it trains
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(json.dumps(summary, indent=2))
