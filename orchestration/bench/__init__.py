"""Benchmarks: ``anonreid bench <name> --json FILE``. Each prints JSON; results go in docs/BENCHMARKS.md."""

from __future__ import annotations

import typer

app = typer.Typer(help="Benchmarks that print JSON (record results in docs/BENCHMARKS.md).", no_args_is_help=True)

from anonreid.orchestration.bench import camera  # noqa: E402
from anonreid.orchestration.bench import train as train_bench  # noqa: E402

app.command("camera")(camera.main)
app.command("train")(train_bench.main)

from anonreid.orchestration.bench import voxel  # noqa: E402  (after `app`, one line per benchmark)

app.command("voxel")(voxel.main)

from anonreid.orchestration.bench import simulate  # noqa: E402

app.command("simulate")(simulate.main)

from anonreid.orchestration.bench import gallery as gallery_bench  # noqa: E402

app.command("gallery")(gallery_bench.main)

from anonreid.orchestration.bench import load  # noqa: E402

app.command("load")(load.main)

from anonreid.orchestration.bench import association  # noqa: E402

app.command("association")(association.main)

from anonreid.orchestration.bench import event_stats  # noqa: E402

app.command("event-stats")(event_stats.main)

from anonreid.orchestration.bench import redaction  # noqa: E402

app.command("redaction")(redaction.main)
