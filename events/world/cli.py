"""``anonreid simulate``: write a synthetic world dataset (and optionally previews / an Event-ReId export)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from anonreid.orchestration.cli_common import ConfigOption, SetOption, resolve_config


def simulate(
    out: Annotated[Path, typer.Option("--out", help="output directory (world.json + world.h5)")],
    identities: Annotated[int | None, typer.Option("--identities", help="number of people (default 33)")] = None,
    seconds: Annotated[float | None, typer.Option("--seconds", help="seconds per pass (default 3.5)")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="world seed (default 0)")] = None,
    resolution: Annotated[str | None, typer.Option("--resolution", help="WIDTHxHEIGHT (default 320x240)")] = None,
    train_identities: Annotated[int | None, typer.Option("--train-identities",
                                                         help="train split size (default: 2/3 of identities)")] = None,
    first_identity: Annotated[int | None, typer.Option(
        "--first-identity", help="number of the first person (default 1): 151 gives people 151.. that the "
                                 "same seed's 150-identity world does not hold")] = None,
    workers: Annotated[int | None, typer.Option("--workers", help="simulation processes")] = None,
    preview: Annotated[bool, typer.Option("--preview", help="write PNG grids into OUT/preview")] = False,
    export: Annotated[str | None, typer.Option(
        "--export", help="also export in an Event-ReId layout: event-reid (<ID>/camNN/events.txt + labels) or "
                         "event-reid-chunks (100 us chunk files + train/query/gallery lists)")] = None,
    config: ConfigOption = None,
    set_: SetOption = None,
) -> None:
    """Simulate the four-camera world: every identity walks through every camera (3-4 s passes)."""

    cfg = resolve_config(config, set_).world
    updates: dict[str, object] = {}
    if identities is not None:
        updates["identities"] = identities
        updates["train_identities"] = train_identities or max(1, round(identities * 2 / 3))
    elif train_identities is not None:
        updates["train_identities"] = train_identities
    for key, val in (("pass_seconds", seconds), ("seed", seed), ("resolution", resolution), ("workers", workers),
                     ("first_identity", first_identity)):
        if val is not None:
            updates[key] = val
    if export not in (None, "event-reid", "event-reid-chunks"):
        typer.echo(f"error: --export must be 'event-reid' or 'event-reid-chunks', got {export!r}", err=True)
        raise typer.Exit(2)
    from pydantic import ValidationError

    from anonreid.orchestration.config import WorldConfig

    try:
        cfg = WorldConfig(**{**cfg.model_dump(), **updates})
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(part) for part in ("world", *err["loc"]))
        typer.echo(f"error: invalid world configuration: {field}: {err['msg']}", err=True)
        raise typer.Exit(2) from None
    from anonreid.events.world.dataset import simulate_dataset

    root = simulate_dataset(out, cfg, progress=True)
    typer.echo(f"wrote {root / 'world.json'} and {root / 'world.h5'}")
    if preview:
        from anonreid.events.world.preview import write_previews

        for path in write_previews(root, root / "preview"):
            typer.echo(f"preview: {path}")
    if export == "event-reid":
        from anonreid.events.world.export import export_event_reid

        dest = export_event_reid(root, root / "event-reid")
        typer.echo(f"exported Event-ReId layout to {dest}")
    elif export == "event-reid-chunks":
        from anonreid.events.world.export import export_event_reid_chunks

        dest = export_event_reid_chunks(root, root / "event-reid-chunks")
        typer.echo(f"exported Event-ReId chunks and lists to {dest} (sensor {cfg.resolution}, time unit 100us)")
