"""``anonreid gateway push`` (edge-side publisher) and ``anonreid camera run`` (one camera node).

Heavy imports (torch, ray, grpc) happen inside the commands so ``anonreid --help`` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from anonreid.orchestration.cli_common import (
    ConfigOption,
    SensorOption,
    SetOption,
    TimeUnitOption,
    event_file_options,
    option_or_config,
    resolve_config,
    serve_until_stopped,
)

gateway_app = typer.Typer(help="Edge-side publishers: events into Redis Streams.", no_args_is_help=True)
camera_app = typer.Typer(help="Run a single camera node against an existing gallery and Redis.", no_args_is_help=True)


@gateway_app.command("push")
def gateway_push(
    file: Annotated[Path, typer.Argument(help="event file (Event-ReId txt, HDF5, .raw, .dat, AEDAT4, .npz, text)")],
    camera: Annotated[str, typer.Option("--camera", help="camera id: the stream is events:<camera>")],
    redis_url: Annotated[str, typer.Option("--redis-url", help="Redis to push to (default: redis.url)")] = "",
    realtime: Annotated[bool, typer.Option("--realtime/--fast", help="pace by the event clock or push at once")] = False,
    speed: Annotated[float, typer.Option(help="replay speed when --realtime")] = 1.0,
    packet_ms: Annotated[float, typer.Option(help="packet length in milliseconds")] = 10.0,
    maxlen: Annotated[int, typer.Option(help="approximate bound of the stream length, entries")] = 100_000,
    sensor: SensorOption = "",
    time_unit: TimeUnitOption = "",
    eos: Annotated[bool, typer.Option("--eos/--no-eos", help="end with an end-of-stream entry")] = True,
    config: ConfigOption = None,
    set_: SetOption = None,
) -> None:
    """Publish an event file into the Redis stream events:<camera>, one entry per packet."""
    from anonreid.events.types import EventFormatError, SensorSize
    from anonreid.nodes.sources import push_file
    from anonreid.orchestration.redis_service import connect

    cfg = resolve_config(config, set_)
    time_unit, sensor = event_file_options(cfg, time_unit, sensor)
    url = option_or_config(redis_url, cfg.redis.url, "--redis-url", "redis.url", "Redis to push to")
    if not file.exists():
        typer.echo(f"error: {file}: no such file", err=True)
        raise typer.Exit(2)
    client = connect(url, cfg.redis.password or None)
    try:
        counts = push_file(
            client, file, camera, packet_us=int(packet_ms * 1000), realtime=realtime, speed=speed, maxlen=maxlen,
            sensor=SensorSize.parse(sensor) if sensor else None, end_of_stream=eos, time_unit=time_unit,
        )
    except (EventFormatError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps({"camera": camera, "stream": f"events:{camera}", **counts}))


@camera_app.command("run")
def camera_run(
    camera: Annotated[str, typer.Option("--camera", help="camera id (cam1..cam4 for the live world)")],
    source: Annotated[str, typer.Option(help="live | redis | PATH of an event file")] = "live",
    gallery: Annotated[str, typer.Option(help="gallery gRPC address (default: gallery.host:gallery.port)")] = "",
    redis_url: Annotated[str, typer.Option("--redis-url", help="Redis for the audit tap / stream ingest")] = "",
    duration: Annotated[float, typer.Option(help="stop after this many seconds (0 = until the source ends / Ctrl-C)")] = 0.0,
    realtime: Annotated[bool, typer.Option("--realtime/--fast", help="file / live: pace by the wall clock")] = True,
    metrics_port: Annotated[int, typer.Option(help="Prometheus port (default: camera.metrics_port)")] = -1,
    json_out: Annotated[Path | None, typer.Option("--json", help="write the final stats here")] = None,
    sensor: SensorOption = "",
    time_unit: TimeUnitOption = "",
    config: ConfigOption = None,
    set_: SetOption = None,
) -> None:
    """Run one camera node in this process until its source ends, --duration passes, or Ctrl-C.

    A file source is replayed at the rate of its own clock (--realtime, the default; --fast: as fast as
    the node goes): EVT 2.0/3.0 .raw, .dat, AEDAT4, HDF5, .npz or Event-ReId text."""
    from anonreid.events.types import EventFormatError
    from anonreid.nodes.actors import CameraService
    from anonreid.nodes.sources import SourceSpec

    cfg = resolve_config(config, set_)
    url = redis_url or cfg.redis.url
    common = {"camera_id": camera, "packet_us": cfg.camera.packet_us, "realtime": realtime}
    if source == "live":
        spec = SourceSpec(kind="live", world=cfg.world.model_dump(), **common)  # type: ignore[arg-type]
    elif source == "redis":
        if not url:
            typer.echo("error: --source redis needs --redis-url or redis.url", err=True)
            raise typer.Exit(2)
        spec = SourceSpec(kind="redis", redis_url=url, redis_password=cfg.redis.password, **common)  # type: ignore[arg-type]
    else:
        if not Path(source).exists():
            typer.echo(f"error: --source {source}: no such file (expected live, redis or a file)", err=True)
            raise typer.Exit(2)
        time_unit, sensor = event_file_options(cfg, time_unit, sensor)
        spec = SourceSpec(kind="file", path=source, sensor=sensor, time_unit=time_unit, **common)  # type: ignore[arg-type]
    address = gallery or f"{cfg.gallery.host}:{cfg.gallery.port}"
    try:
        service = CameraService(
            spec, address, url or None, cfg.redis.password or None, cfg.camera, cfg.events,
            metrics_port=cfg.camera.metrics_port if metrics_port < 0 else metrics_port, security=cfg.security,
        )
    except (EventFormatError, ValueError) as exc:  # the recording: its format, time unit or sensor size
        typer.echo(f"error: --source {source}: {exc}", err=True)
        raise typer.Exit(2) from None
    serve_until_stopped(service, duration, json_out)
