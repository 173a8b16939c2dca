"""Benchmarks: ``anonreid bench <name> --json FILE``. Each prints JSON; results go in docs/BENCHMARKS.md."""

from __future__ import annotations

import typer

app = typer.Typer(help="Benchmarks that print JSON (record results in docs/BENCHMARKS.md).", no_args_is_help=True)
