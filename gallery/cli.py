"""Gallery commands: ``anonreid gallery serve`` and the operator CLI (identities, trajectory, search, forget).

The operator commands talk gRPC to a running gallery (``--address``, default ``gallery.host:gallery.port``
of the configuration) and print a table, or JSON with ``--json``.
"""

from __future__ import annotations

import json
import logging
import signal
from pathlib import Path
from typing import Annotated, Any

import typer

from anonreid.orchestration.cli_common import ConfigOption, SetOption, resolve_config

log = logging.getLogger(__name__)

app = typer.Typer(help="The central gallery (gRPC, FAISS, Redis).", no_args_is_help=True)

AddressOption = Annotated[str, typer.Option("--address", help="gallery host:port (default: from the configuration)")]
JsonOption = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]


@app.command("serve")
def serve(
    config: ConfigOption = None,
    set_: SetOption = None,
    redis_url: Annotated[str, typer.Option("--redis-url", help="Redis URL (default: redis.url; empty = embedded)")] = "",
    port: Annotated[int | None, typer.Option(help="gRPC port (default: gallery.port)")] = None,
) -> None:
    """Run the gallery until SIGINT / SIGTERM, then stop gracefully."""
    from anonreid.gallery.console.server import start_console
    from anonreid.gallery.service import GalleryServer
    from anonreid.orchestration.infra.redis_process import DataDirInUse
    from anonreid.orchestration.redis_service import RedisService
    from anonreid.orchestration.security.tls import CredentialsError, check_files

    cfg = resolve_config(config, set_)
    try:  # before anything starts: the gallery serves with them, its console is a client
        check_files(cfg.security, server=True, client=cfg.console.enabled)
    except CredentialsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    gallery_cfg = cfg.gallery if port is None else cfg.gallery.model_copy(update={"port": port})
    redis_cfg = cfg.redis if not redis_url else cfg.redis.model_copy(update={"url": redis_url})
    try:
        redis_service = RedisService(redis_cfg).start()
    except DataDirInUse as exc:  # another gallery runs on redis.embedded_dir
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    server = GalleryServer(gallery_cfg, redis_service.url, redis_service.password, security=cfg.security)
    console = None
    try:
        address = server.start()
        host, _, grpc_port = address.rpartition(":")
        local = f"localhost:{grpc_port}" if host in ("0.0.0.0", "[::]", "::") else address
        console = start_console(cfg, local, redis_service.url, redis_service.password)
    except Exception:
        server.stop()
        redis_service.stop()
        raise

    def shutdown(signum: int, _frame: object) -> None:
        log.info("signal %s: stopping the gallery (grace %.1f s)", signal.Signals(signum).name, gallery_cfg.grace_s)
        server.stop()

    signal.signal(signal.SIGINT, shutdown)
    signal.signal(signal.SIGTERM, shutdown)
    console_note = f", console on {console.url}" if console is not None else ""
    typer.echo(f"gallery serving on {address} (metrics on port {server.metrics_port}{console_note}); Ctrl-C stops")
    try:
        while not server.wait(0.5):
            pass
    finally:
        if console is not None:
            console.stop()
        server.stop()
        redis_service.stop()


def _client(address: str, config: Path | None, overrides: list[str] | None) -> Any:
    from anonreid.gallery.client import GalleryClient

    cfg = resolve_config(config, overrides)
    if not address:
        address = f"{cfg.gallery.host}:{cfg.gallery.port}"
    return GalleryClient(address, retry_timeout_s=5.0, security=cfg.security)


def _run(address: str, config: Path | None, overrides: list[str] | None, fn: Any) -> Any:
    from anonreid.gallery.client import GalleryClientError

    client = _client(address, config, overrides)
    try:
        return fn(client)
    except GalleryClientError as exc:
        typer.echo(f"error: gallery at {client.address}: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        client.close()


def _print(rows: list[dict[str, Any]], as_json: bool, title: str, payload: Any = None) -> None:
    if as_json:
        typer.echo(json.dumps(payload if payload is not None else rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for col in rows[0] if rows else ["(none)"]:
        table.add_column(col)
    for row in rows:
        table.add_row(*(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row.values()))
    Console().print(table)


def _s(us: int) -> float:
    return us / 1e6


def _columns(rows: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """The first ``n`` columns of each row: what the table shows (``--json`` gives them all)."""
    return [dict(list(row.items())[:n]) for row in rows]


def _at(us: int, clock: Any) -> str:
    """A stream time on its sighting's clock: wall clock for live sources, the recording's for replays."""
    from anonreid.gallery.clocks import describe_time
    from anonreid.gallery.servicer import clock_from_pb

    return describe_time(us, clock_from_pb(clock))


def identities(
    address: AddressOption = "",
    limit: Annotated[int, typer.Option(help="at most this many (0 = server default)")] = 0,
    camera: Annotated[str, typer.Option(help="only identities seen by this camera")] = "",
    since_us: Annotated[int, typer.Option(help="only identities seen at or after this time (us)")] = 0,
    as_json: JsonOption = False,
    config: ConfigOption = None,
    set_: SetOption = None,
) -> None:
    """List global identities, most recently seen first."""
    found = _run(address, config, set_, lambda c: c.list_identities(limit, since_us, camera))
    rows = [{"identity": i.identity_id, "cameras": " > ".join(i.cameras), "last_seen": _at(i.last_seen_us, i.last_seen_clock),
             "sightings": i.num_sightings, "first_seen": _at(i.first_seen_us, i.first_seen_clock),
             "first_seen_s": _s(i.first_seen_us), "last_seen_s": _s(i.last_seen_us)} for i in found]
    _print(_columns(rows, 4), as_json, f"{len(rows)} identities", rows)


def trajectory(
    identity_id: Annotated[str, typer.Argument(help="global identity, e.g. id-000012")],
    address: AddressOption = "",
    as_json: JsonOption = False,
    config: ConfigOption = None,
    set_: SetOption = None,
) -> None:
    """The identity's time-ordered camera visits.

    ``start`` / ``end`` read on each visit's clock: the local wall-clock time for a live camera, the
    recording's own clock for a replay (marked ``(recording)``); ``start_s`` / ``end_s`` are the stream's
    seconds, as the gallery compares them."""
    traj = _run(address, config, set_, lambda c: c.trajectory(identity_id))
    rows = [{"camera": st.camera_id, "start": _at(st.span.start_us, st.clock), "end": _at(st.span.end_us, st.clock),
             "sightings": ",".join(st.sighting_ids), "start_s": _s(st.span.start_us), "end_s": _s(st.span.end_us)}
            for st in traj.steps]
    fixes = [{"kind": c.kind, "camera": c.camera_id, "tracklet": c.tracklet_id, "from": c.from_identity,
              "to": c.to_identity, "sightings": c.sightings, "at_s": _s(c.at_us)} for c in traj.corrections]
    told = ", ".join(f"{f['kind']} {f['from']}->{f['to']} at {f['at_s']} s" for f in fixes)
    title = f"trajectory of {identity_id}" + (f" (corrections: {told})" if fixes else "")
    _print(_columns(rows, 4), as_json, title, {"identity_id": identity_id, "steps": rows, "corrections": fixes})


def search(
    sighting: Annotated[str, typer.Option("--sighting", help="id of a stored sighting to search with")],
    k: Annotated[int, typer.Option("-k", help="matches to return (0 = server default)")] = 0,
    cross_camera: Annotated[bool, typer.Option("--cross-camera", help="exclude the example's camera")] = False,
    address: AddressOption = "",
    as_json: JsonOption = False,
    config: ConfigOption = None,
    set_: SetOption = None,
) -> None:
    """Query by example: the stored sightings most similar to a given sighting."""
    matches = _run(address, config, set_,
                   lambda c: c.query(sighting_id=sighting, k=k, exclude_same_camera=cross_camera))
    rows = [{"sighting": m.sighting_id, "identity": m.identity_id, "camera": m.camera_id,
             "start": _at(m.span.start_us, m.clock), "similarity": float(m.similarity), "start_s": _s(m.span.start_us)}
            for m in matches]
    _print(_columns(rows, 5), as_json, f"matches for {sighting}", rows)


def forget(
    identity_id: Annotated[str, typer.Argument(help="global identity to erase")],
    reason: Annotated[str, typer.Option(help="why (written to the audit log)")] = "",
    address: AddressOption = "",
    as_json: JsonOption = False,
    config: ConfigOption = None,
    set_: SetOption = None,
) -> None:
    """Erase an identity from the gallery (FAISS, Redis, every query)."""
    erased = _run(address, config, set_, lambda c: c.forget(identity_id, reason))
    if as_json:
        typer.echo(json.dumps({"identity_id": identity_id, "sightings_erased": erased}))
    else:
        typer.echo(f"forgot {identity_id}: {erased} sighting(s) erased")


def register(root: typer.Typer) -> None:
    """Add ``gallery serve`` and the operator commands to the root CLI."""
    root.add_typer(app, name="gallery")
    for name, fn in (("identities", identities), ("trajectory", trajectory), ("search", search), ("forget", forget)):
        root.command(name)(fn)
