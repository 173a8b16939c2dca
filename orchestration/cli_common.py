"""What every ``anonreid`` command that runs on the deployment configuration shares: the
``--config`` / ``--set`` options, resolving them (a bad value exits with code 2 and the validation
message), an option that falls back on a config key (neither set: exit code 2), and serving a node in the foreground until it ends, ``--duration`` passes, SIGTERM or Ctrl-C.

Light on purpose (typer and the configuration only): the command modules import it at module level,
and ``anonreid --help`` stays fast.
"""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Annotated, Any, Protocol

import typer

from anonreid.orchestration.config import Config, ConfigError, load_config

ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", help="YAML configuration file")]
SetOption = Annotated[list[str] | None, typer.Option("--set", help="override: key.path=value (repeatable)")]
TimeUnitOption = Annotated[str, typer.Option(
    "--time-unit", help="timestamp unit of event files that do not record it: a power of ten from ns to s (ns, us, "
                        "100us, ms, s) or seconds per tick (1e-4); default: events.time_unit, else the format's "
                        "own (text: inferred, with a warning)")]
SensorOption = Annotated[str, typer.Option(
    "--sensor", help="sensor WIDTHxHEIGHT of event files that do not record it (default: events.sensor)")]


def resolve_config(config: Path | None, overrides: list[str] | None) -> Config:
    """Load the configuration or exit with the validation message (exit code 2)."""
    try:
        return load_config(config, overrides or [])
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def option_or_config(given: str, configured: str, option: str, key: str, what: str) -> str:
    """The command-line value ``given``, else the configuration's; when neither is set, exit with code 2:
    ``error: no <what>: give <option> or set <key>``."""
    value = given or configured
    if not value:
        typer.echo(f"error: no {what}: give {option} or set {key}", err=True)
        raise typer.Exit(2)
    return value


def event_file_options(cfg: Config, time_unit: str, sensor: str) -> tuple[str, str]:
    """``(time_unit, sensor)`` for reading event files: ``--time-unit`` / ``--sensor`` over the config's
    ``events.time_unit`` / ``events.sensor``; a bad value exits with code 2 naming the option."""
    return check_event_file_options(time_unit or cfg.events.time_unit, sensor or cfg.events.sensor)


def check_event_file_options(time_unit: str, sensor: str) -> tuple[str, str]:
    """``(time_unit, sensor)`` as given, after checking them: a bad value exits with code 2 naming the
    option (for commands whose configuration has no ``events`` section, e.g. ``train``)."""
    from anonreid.events.io.time_units import time_scale_to_us
    from anonreid.events.types import SensorSize

    try:
        if time_unit:
            time_scale_to_us(time_unit)
    except ValueError as exc:
        typer.echo(f"error: --time-unit: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        if sensor:
            SensorSize.parse(sensor)
    except ValueError as exc:
        typer.echo(f"error: --sensor: {exc}", err=True)
        raise typer.Exit(2) from None
    return time_unit, sensor


class Node(Protocol):
    """A node service run in the background of this process (CameraService, AdversaryNode)."""

    def start(self, duration_s: float | None = None) -> None: ...
    def stop(self, timeout: float = 30.0) -> dict[str, Any]: ...
    def stats(self) -> dict[str, Any]: ...


def serve_until_stopped(node: Node, duration_s: float, json_out: Path | None) -> None:
    """Run ``node`` until it ends by itself, ``duration_s`` passes (0: no limit), SIGTERM or Ctrl-C;
    stop it (it finishes its work in hand), print its final stats as JSON (and write them to
    ``json_out``) and exit with code 1 when it failed."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    node.start(duration_s or None)
    try:
        while not stop.is_set() and node.stats()["running"]:
            stop.wait(0.5)
    except KeyboardInterrupt:
        typer.echo("stopping", err=True)
    stats = node.stop()
    close = getattr(node, "close", None)
    if close is not None:
        close()
    text = json.dumps(stats, indent=2, default=str)
    typer.echo(text)
    if json_out is not None:
        json_out.write_text(text)
    if stats.get("error"):
        raise typer.Exit(1)
