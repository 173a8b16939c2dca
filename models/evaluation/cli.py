"""``anonreid evaluate``: the CLI front of :mod:`anonreid.models.evaluation.evaluate` (torch imported inside)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from anonreid.orchestration.cli_common import SensorOption, TimeUnitOption, check_event_file_options

if TYPE_CHECKING:
    from anonreid.models.evaluation.attacks import AttackerCfg


def evaluate(
    out: Annotated[Path, typer.Option("--out", help="output directory for results.json, results.md and figures")],
    run: Annotated[Path | None, typer.Option(
        "--run", help="training run directory (from `anonreid train`) or a shipped model set; default: the shipped "
                      "models (models/weights/default)")] = None,
    data: Annotated[
        Path | None, typer.Option("--data", help="world dataset directory (also trains the attacker's nets)")
    ] = None,
    dataset: Annotated[str, typer.Option(
        "--dataset", help="world | event-reid | paired-h5 (the reconstruction attacks on real events + frames)")] = "world",
    root: Annotated[Path | None, typer.Option(
        "--root", help="Event-ReId root (with --dataset event-reid): <ID>/camNN/events.txt, or chunk files with "
                       "query_list.txt + gallery_list.txt; with --dataset paired-h5 an HDF5 file (events/xs,ys,ts,ps "
                       "+ images/*) or a directory of them")] = None,
    time_unit: TimeUnitOption = "",
    sensor: SensorOption = "",
    clips_per_pass: Annotated[int, typer.Option("--clips-per-pass", min=1, help="test clips per pass, evenly spaced")] = 8,
    attacker_steps: Annotated[
        int | None, typer.Option("--attacker-steps", min=1, help="training steps of the attacker's nets (default: the "
                                                           "run config's attacker section)")
    ] = None,
    face_weights: Annotated[
        Path | None, typer.Option("--face-weights", help="TorchScript ArcFace-style face embedder to use instead")
    ] = None,
    encryption: Annotated[bool, typer.Option("--encryption/--no-encryption", help="Table 3's encryption rows")] = True,
    detection: Annotated[bool, typer.Option("--detection/--no-detection", help="ReId on detected boxes too")] = True,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="show progress bars")] = True,
    verdict: Annotated[bool, typer.Option(
        "--verdict/--no-verdict", help="give the privacy verdicts (refused, with an error, when the run trained or "
                                       "validated on a test identity); --no-verdict: only the numbers")] = True,
    train_data: Annotated[Path | None, typer.Option(
        "--train-data", help="the world the run was trained on, when it is not --data (to check its identities)")] = None,
    attacker_data: Annotated[Path | None, typer.Option(
        "--attacker-data", help="world whose training people the attacker's nets learn from (default: --data's), "
                                "e.g. one filmed on several days (world.outfit_days) so that the outfit is no cue "
                                "to them; none of its training people may be a test identity")] = None,
    world_alias: Annotated[list[str] | None, typer.Option(
        "--world-alias", help="FINGERPRINT=DIR: the run's checkpoints recording world FINGERPRINT were trained on "
                              "a world that DIR re-simulates (same seed and settings; its world.json has gained "
                              "fields since, e.g. the shipped models' a04d935382b28b09): compare DIR's people "
                              "instead (recorded in the results as asserted; repeatable)")] = None,
) -> None:
    """Reproduce the paper's tables (and the extra attacks) for a trained run."""
    time_unit, sensor = check_event_file_options(time_unit, sensor)  # a bad value fails before torch is imported
    import logging

    from anonreid.models.bundle import run_view
    from anonreid.models.evaluation.evaluate import EvalOptions, evaluate_run

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.captureWarnings(True)  # e.g. an inferred time unit: on stderr through the log
    parts = ["anonreid evaluate"] + [f"--run {run}"] * bool(run) + [f"--out {out}"] + ([f"--data {data}"] if data else [])
    if dataset != "world":
        parts += [f"--dataset {dataset}", f"--root {root}"]
    parts += [f"--time-unit {time_unit}"] * bool(time_unit) + [f"--sensor {sensor}"] * bool(sensor)
    parts += [f"--clips-per-pass {clips_per_pass}"] + ([f"--attacker-steps {attacker_steps}"] if attacker_steps else [])
    parts += [f"--face-weights {face_weights}"] * bool(face_weights) + ["--no-encryption"] * (not encryption)
    parts += ["--no-detection"] * (not detection) + ["--no-verdict"] * (not verdict)
    parts += [f"--train-data {train_data}"] * bool(train_data) + [f"--world-alias {a}" for a in world_alias or []]
    parts += [f"--attacker-data {attacker_data}"] * bool(attacker_data)
    aliases = dict(_named_paths(world_alias, "--world-alias", "FINGERPRINT=DIR"))
    if dataset == "world" and data is None:
        typer.echo("error: --data DIR (the world dataset) is required with --dataset world", err=True)
        raise typer.Exit(2)
    if dataset in ("event-reid", "paired-h5") and root is None:
        what = "the Event-ReId directory" if dataset == "event-reid" else "the paired HDF5 recordings"
        typer.echo(f"error: --root PATH ({what}) is required with --dataset {dataset}", err=True)
        raise typer.Exit(2)
    if dataset not in ("world", "event-reid", "paired-h5"):
        typer.echo(f"error: --dataset must be world, event-reid or paired-h5, got {dataset!r}", err=True)
        raise typer.Exit(2)
    if dataset == "paired-h5":
        _evaluate_paired(run, out, root, time_unit, sensor, clips_per_pass, progress, " ".join(parts))
        return
    try:
        run_dir = run_view(run, out)
        opts = EvalOptions(clips_per_pass=clips_per_pass, face_weights=face_weights, encryption=encryption,
                           detection=detection, progress=progress, attacker=_attacker_cfg(run_dir, attacker_steps),
                           verdict=verdict, train_data=train_data, world_aliases=aliases, attacker_data=attacker_data,
                           time_unit=time_unit or None, sensor=sensor)
        res = evaluate_run(run_dir, out, data, dataset, root, opts, command=" ".join(parts))
    except (FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"wrote {out / 'results.md'} and {out / 'results.json'} ({res.wall_s} s)")


def _evaluate_paired(run: Path | None, out: Path, root: Path | None, time_unit: str, sensor: str, clips_per_pass: int,
                     progress: bool, command: str) -> None:
    """``--dataset paired-h5``: :mod:`anonreid.models.evaluation.paired`."""
    from anonreid.events.types import EventFormatError
    from anonreid.models.bundle import run_view
    from anonreid.models.evaluation.paired import evaluate_paired

    assert root is not None
    try:
        res = evaluate_paired(run_view(run, out), out, root, time_unit or None, sensor, clips_per_pass, progress, command)
    except (FileNotFoundError, ValueError, EventFormatError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"wrote {out / 'results.md'} and {out / 'results.json'} ({res.wall_s} s)")


def _named_paths(items: list[str] | None, option: str, form: str) -> list[tuple[str, Path]]:
    """``KEY=PATH`` option values as (key, path) pairs; a malformed one exits 2 naming ``option``."""
    pairs = []
    for item in items or []:
        key, sep, path = item.partition("=")
        if not sep or not key.strip() or not path.strip():
            typer.echo(f"error: {option} needs {form}, got {item!r}", err=True)
            raise typer.Exit(2)
        pairs.append((key.strip(), Path(path.strip())))
    return pairs


def _attacker_cfg(run: Path, steps: int | None) -> AttackerCfg | None:
    """The attacker of the run's config with ``--attacker-steps`` applied (None: evaluate_run decides)."""
    if steps is None:
        return None
    from anonreid.models.config import load_train_config
    from anonreid.models.evaluation.attacks import AttackerCfg

    return AttackerCfg.from_config(load_train_config(run / "config.yaml"), steps)


def rejudge(
    results: Annotated[list[Path], typer.Argument(
        help="output directories of `anonreid evaluate` (results.json + results.md)", metavar="DIR...")],
) -> None:
    """Judge evaluated runs again with this version's privacy rules (every number stays as measured):
    rewrites the verdicts in results.json and the checks in results.md."""
    from anonreid.models.evaluation.report import rejudge as rejudge_dir

    for path in results:
        try:
            rejudge_dir(path)
        except (FileNotFoundError, ValueError, KeyError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        typer.echo(f"rejudged {path}")


def frontier(
    out: Annotated[Path, typer.Option("--out", help="output directory for frontier.png, frontier.json and frontier.md")],
    results: Annotated[list[Path] | None, typer.Argument(
        help="results.json files of `anonreid evaluate` (or their directories), each named after its directory",
        metavar="RESULTS_JSON...", show_default=False)] = None,
    label: Annotated[list[str] | None, typer.Option(
        "--label", help="NAME=PATH: a results.json (or its directory) under a name of your own (repeatable)")] = None,
) -> None:
    """The privacy–utility frontier of several evaluated runs (e.g. a sweep of joint.beta), with the paper's point."""
    from anonreid.models.evaluation.frontier import build_frontier, results_path, write_frontier

    runs = [(results_path(p).parent.name or str(p), p) for p in results or []]
    runs += _named_paths(label, "--label", "NAME=PATH")
    if not runs:
        typer.echo("error: give at least one results.json (RESULTS_JSON... or --label NAME=PATH)", err=True)
        raise typer.Exit(2)
    command = " ".join(["anonreid frontier", *map(str, results or []), *(f"--label {x}" for x in label or []),
                        f"--out {out}"])
    try:
        fr = build_frontier(runs, command)
    except (FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    for written in write_frontier(fr, out):
        typer.echo(f"wrote {written}")
