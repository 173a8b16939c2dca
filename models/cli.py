"""``anonreid train``: the CLI front of :mod:`anonreid.models.train` (torch is imported inside)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from anonreid.orchestration.cli_common import SensorOption, TimeUnitOption, check_event_file_options


def train(
    out: Annotated[Path, typer.Option("--out", help="run directory (created)")],
    data: Annotated[Path | None, typer.Option(
        "--data", help="world dataset directory (world.json + world.h5), with --dataset world")] = None,
    dataset: Annotated[str, typer.Option(
        "--dataset", help="world | event-reid (real events: stages reid, joint) | paired-h5 (real events + frames "
                          "in HDF5: stage rec, and the reconstruction attacks with --anonymizer)")] = "world",
    root: Annotated[Path | None, typer.Option(
        "--root", help="Event-ReId root (with --dataset event-reid): <ID>/camNN/events.txt, or chunk files with "
                       "train_list.txt (+ query_list.txt, gallery_list.txt); with --dataset paired-h5 an HDF5 file "
                       "(events/xs,ys,ts,ps + images/* with attribute timestamp) or a directory of them")] = None,
    rec: Annotated[Path | None, typer.Option(
        "--rec", help="frozen E_rec for the privacy term on real events (a checkpoint, or a folder with e_rec.json: "
                      "a world run, or a --dataset paired-h5 run); default: the shipped models/weights/default")] = None,
    anonymizer: Annotated[Path | None, typer.Option(
        "--anonymizer", help="with --dataset paired-h5: the frozen anonymizer the attacks (adaptive, finetune, linear, "
                             "inv) train against on your recordings (a run, models/weights/default, or a "
                             "checkpoint)")] = None,
    config: Annotated[str, typer.Option("--config", "-c", help="preset tiny | cpu | minmax | paper, or a YAML path")] = "tiny",
    stage: Annotated[
        list[str] | None, typer.Option("--stage", help="rec | reid | joint | inv | adaptive | finetune | linear | identity "
                                     "| identity_raw (the identity attack on raw events: its no-privacy "
                                     "reference) | reid_anon (E_reid again on the run's frozen anonymizer, e.g. "
                                     "on a wider world: its privacy numbers still hold) (repeatable; default all "
                                     "but reid_anon)")
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
    attacks on the frozen E_an (inversion, adaptive, fine-tuned, linear inverse, direct identity); on
    Event-ReId (``--dataset event-reid``) the raw ReId baseline and E_an + E_reid against a frozen E_rec; on
    paired events + frames in HDF5 (``--dataset paired-h5``) E_rec, for ``--dataset event-reid --rec RUN``, and
    the reconstruction attacks on a frozen ``--anonymizer``."""
    import json

    from anonreid.models.config import load_train_config
    from anonreid.orchestration.config import ConfigError

    source = f"--data {data}" if dataset == "world" else f"--dataset {dataset} --root {root}" + f" --rec {rec}" * bool(rec)
    source += f" --anonymizer {anonymizer}" * bool(anonymizer)
    parts = ["anonreid train", source, f"--config {config}", f"--out {out}"]
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
    source_arg = _training_source(dataset, data, root, rec, time_unit, sensor, workers > 1 or bool(ray_address),
                                  anonymizer)
    from anonreid.events.types import EventFormatError
    from anonreid.models.budget import AttackBudgetError
    from anonreid.models.sources import TrainingDataError

    try:
        if workers > 1 or ray_address:
            from anonreid.models.distributed import run_distributed

            assert isinstance(source_arg, Path)
            summary = run_distributed(source_arg, cfg, out, stage, resume, ablation, workers, ray_address, command)
        else:
            import logging

            from anonreid.models.pipeline import run_training

            logging.captureWarnings(True)  # e.g. an inferred time unit: on stderr through the log
            summary = run_training(source_arg, cfg, out, stage, resume=resume, ablation=ablation, progress=progress,
                                   command=command)
    except (AttackBudgetError, TrainingDataError, EventFormatError) as exc:  # bad input: refused, no traceback
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(json.dumps(summary, indent=2))


def _training_source(
    dataset: str, data: Path | None, root: Path | None, rec: Path | None, time_unit: str, sensor: str,
    distributed: bool, anonymizer: Path | None = None,
) -> Any:
    """``--data WORLD`` (a Path), an Event-ReId or a paired-HDF5 source; a missing or misplaced option exits
    with code 2."""

    def fail(message: str) -> NoReturn:
        typer.echo(f"error: {message}", err=True)
        raise typer.Exit(2)

    if anonymizer is not None and dataset != "paired-h5":
        fail("--anonymizer is the frozen anonymizer of the attacks on --dataset paired-h5 (a world run's attacks "
             "use the run's own)")
    if dataset == "world":
        if data is None:
            fail("--data DIR (the world dataset) is required with --dataset world")
        if root is not None or rec is not None:
            fail("--root / --rec are for --dataset event-reid (and --root for --dataset paired-h5)")
        if not (data / "world.json").exists():
            fail(f"--data {data}: no world.json (create one with `anonreid world simulate`)")
        if time_unit or sensor:  # as for the formats that record them (.raw, .dat, AEDAT4): said, not used
            typer.echo(f"warning: --data {data} is a world dataset, which records its time unit (us) and sensor size "
                       "(world.json); --time-unit / --sensor are for event files that do not, and are not used for it",
                       err=True)
        return data
    if dataset == "paired-h5":
        if root is None:
            fail("--root FILE_OR_DIR (the paired HDF5 recordings) is required with --dataset paired-h5")
        if data is not None:
            fail("--data is the world; with --dataset paired-h5 the events and frames come from --root")
        if rec is not None:
            fail("--rec is the frozen E_rec of --dataset event-reid; --dataset paired-h5 trains an E_rec")
        if distributed:
            fail("--dataset paired-h5 trains in one process (--workers 1, no --ray-address)")
        from anonreid.models.sources import PairedH5Source, TrainingDataError, anonymizer_checkpoint

        try:
            stem = anonymizer_checkpoint(anonymizer) if anonymizer is not None else None
        except TrainingDataError as exc:
            fail(str(exc))
        return PairedH5Source(root, time_unit or None, sensor, stem)
    if dataset != "event-reid":
        fail(f"--dataset must be world, event-reid or paired-h5, got {dataset!r}")
    if root is None:
        fail("--root PATH (the Event-ReId directory) is required with --dataset event-reid")
    if data is not None:
        fail("--data is the world; with --dataset event-reid the events come from --root")
    if distributed:
        fail("--dataset event-reid trains in one process (--workers 1, no --ray-address)")
    from anonreid.models.bundle import DEFAULT_WEIGHTS
    from anonreid.models.sources import EventReidSource, TrainingDataError, rec_checkpoint

    try:
        stem = rec_checkpoint(rec if rec is not None else DEFAULT_WEIGHTS)
    except TrainingDataError as exc:
        fail(str(exc))
    return EventReidSource(root, stem, time_unit or None, sensor)
