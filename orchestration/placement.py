"""Place the camera nodes as Ray actors on a Ray cluster and keep them running.

``anonreid place-cameras --ray-address ray://<head>:10001`` is what the Helm chart's camera Job runs
on Kubernetes (KubeRay): it joins the cluster as a Ray client, creates one named, detached
:class:`~anonreid.nodes.actors.CameraService` actor per camera id (``gallery.camera_ids``) that
publishes to the gallery at ``gallery.host:gallery.port`` and uses the cluster's Redis
(``redis.url``), then supervises them. Ray places the actors (on GPU workers when the cluster has
GPUs) and restarts a dead actor's process (``max_restarts``); the supervisor starts the camera loop
again in a restarted actor (Ray re-runs only the constructor) or after a failed run. The actors are
named and detached, so a restarted driver finds them again (``get_if_exists``) instead of placing
duplicates, and the cameras keep running while the driver is rescheduled.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from typing import Annotated, Any

import typer

from anonreid.orchestration.cli_common import ConfigOption, SetOption, option_or_config, resolve_config
from anonreid.orchestration.config import Config

log = logging.getLogger(__name__)

SOURCES = ("live", "redis")


class PlacementError(RuntimeError):
    """The cameras cannot be placed or keep failing; the message names the camera or the setting."""


def actor_name(camera_id: str) -> str:
    return f"camera-{camera_id}"


def source_spec(cfg: Config, camera_id: str, source: str) -> Any:
    """What the camera reads: the live synthetic world, or its Redis stream ``events:<camera>``."""
    from anonreid.nodes.sources import SourceSpec

    if source == "live":
        return SourceSpec(kind="live", camera_id=camera_id, world=cfg.world.model_dump(), packet_us=cfg.camera.packet_us)
    if source == "redis":
        return SourceSpec(kind="redis", camera_id=camera_id, redis_url=cfg.redis.url,
                          redis_password=cfg.redis.password, packet_us=cfg.camera.packet_us)
    raise PlacementError(f"unknown source {source!r}: expected one of {', '.join(SOURCES)}")


def place_cameras(cfg: Config, source: str = "live", max_restarts: int = -1) -> dict[str, Any]:
    """Create (or find) one detached camera actor per ``gallery.camera_ids``; the process must be in Ray.

    Returns camera id -> actor handle once every actor has loaded its models and opened its source.
    """
    import ray

    from anonreid.nodes.actors import camera_actor_class

    if not cfg.redis.url:
        raise PlacementError("redis.url is empty: camera actors need the cluster's Redis (no embedded one)")
    if not ray.is_initialized():
        raise PlacementError("not connected to Ray: call start_ray first")
    cameras = list(cfg.gallery.camera_ids)
    specs = {cam: source_spec(cfg, cam, source) for cam in cameras}
    gpus = float(ray.cluster_resources().get("GPU", 0))
    actor_cls = camera_actor_class(
        num_cpus=cfg.demo.actor_cpus, num_gpus=min(1.0, gpus / len(cameras)) if gpus else 0.0,
        max_restarts=max_restarts,
    )
    gallery = f"{cfg.gallery.host}:{cfg.gallery.port}"
    actors = {}
    for i, cam in enumerate(cameras):
        port = cfg.camera.metrics_port + i if cfg.camera.metrics_port else 0
        actors[cam] = actor_cls.options(
            name=actor_name(cam), lifetime="detached", get_if_exists=True, resources=placement_resources(cfg, cam)
        ).remote(
            specs[cam], gallery, cfg.redis.url, cfg.redis.password or None, cfg.camera, cfg.events, port
        )
    ray.get([a.ping.remote() for a in actors.values()])
    log.info("placed %d camera actors (%s) publishing to %s", len(actors), ", ".join(cameras), gallery)
    return actors


def placement_resources(cfg: Config, camera_id: str) -> dict[str, float]:
    """The Ray custom resource that pins a camera's actor to labelled nodes (``camera.placement``)."""
    label = cfg.camera.placement.get(camera_id)
    return {label: 0.001} if label else {}


def _stats(actor: Any, timeout_s: float) -> dict[str, Any] | None:
    """The actor's stats, or None while Ray restarts it (or it does not answer in time)."""
    import ray

    try:
        stats: dict[str, Any] = ray.get(actor.stats.remote(), timeout=timeout_s)
        return stats
    except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError, ray.exceptions.ActorUnavailableError):
        return None


def supervise(
    actors: dict[str, Any],
    duration_s: float = 0.0,
    poll_s: float = 5.0,
    stop: threading.Event | None = None,
    max_failures: int = 5,
) -> dict[str, dict[str, Any]]:
    """Keep every camera running until ``duration_s`` passes (0 = until ``stop``); returns the last stats.

    A camera that is not running — new, restarted by Ray, or whose run failed — is started again (for
    the time that is left). A camera whose run fails more than ``max_failures`` times raises
    :class:`PlacementError` naming it and its last error.
    """
    stop = stop or threading.Event()
    deadline = time.monotonic() + duration_s if duration_s else None
    failures: Counter[str] = Counter()
    started: dict[str, float] = {}
    last: dict[str, dict[str, Any]] = {}
    while True:
        now = time.monotonic()
        for cam, actor in actors.items():
            stats = _stats(actor, timeout_s=max(poll_s, 10.0))
            if stats is None:
                log.warning("camera %s does not answer (Ray is restarting it?)", cam)
                started.pop(cam, None)
                continue
            last[cam] = stats
            if stats["running"]:
                continue
            if stats.get("error"):
                failures[cam] += 1
                log.warning("camera %s failed (%d/%d): %s", cam, failures[cam], max_failures, stats["error"])
                if failures[cam] > max_failures:
                    raise PlacementError(f"camera {cam} failed {failures[cam]} times; last error: {stats['error']}")
            elif deadline is not None and cam in started:
                continue  # it ran its share of the duration
            remaining = None if deadline is None else deadline - now
            if remaining is not None and remaining <= 0:
                continue
            actor.start.remote(remaining)
            started[cam] = now
            log.info("camera %s started%s", cam, f" for {remaining:.0f} s" if remaining else "")
        if deadline is not None and now >= deadline and not any(s.get("running") for s in last.values()):
            return last
        if stop.wait(poll_s):
            return last


def stop_cameras(actors: dict[str, Any], timeout_s: float = 30.0) -> dict[str, dict[str, Any]]:
    """Stop each camera (final sightings first), then remove its actor."""
    import ray

    final: dict[str, dict[str, Any]] = {}
    for cam, actor in actors.items():
        try:
            final[cam] = ray.get(actor.stop.remote(timeout_s), timeout=timeout_s + 10)
            ray.get(actor.close.remote(), timeout=15)
        except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError) as exc:
            log.warning("camera %s did not stop cleanly: %s", cam, exc)
        ray.kill(actor, no_restart=True)
    _wait_names_released([actor_name(cam) for cam in actors], timeout_s)
    return final


def _wait_names_released(names: list[str], timeout_s: float) -> None:
    """Wait until Ray has released every actor name in ``names``: ``ray.kill`` only asks the GCS to
    kill, so a camera placed again at once could otherwise find the dying actor by its name."""
    import ray

    deadline = time.monotonic() + timeout_s
    for name in names:
        while True:
            try:
                ray.get_actor(name)
            except ValueError:
                break  # released
            if time.monotonic() > deadline:
                log.warning("actor %s still holds its name %.0f s after it was killed", name, timeout_s)
                return
            time.sleep(0.05)


def place_cameras_cmd(
    ray_address: Annotated[str, typer.Option("--ray-address", help="Ray cluster to join (default: ray.address)")] = "",
    source: Annotated[str, typer.Option(help="live (the synthetic world) | redis (streams events:<camera>)")] = "live",
    duration: Annotated[float, typer.Option(help="run this many seconds, then stop the cameras (0 = keep running)")] = 0.0,
    poll: Annotated[float, typer.Option(help="seconds between health checks of the cameras")] = 5.0,
    config: ConfigOption = None,
    set_: SetOption = None,
) -> None:
    """Place one camera actor per gallery.camera_ids on a Ray cluster and keep them running."""
    import json
    import signal

    from anonreid.orchestration.ray_cluster import start_ray

    cfg = resolve_config(config, set_)
    address = option_or_config(ray_address, cfg.ray.address, "--ray-address", "ray.address", "Ray cluster to join")
    if source not in SOURCES:
        typer.echo(f"error: --source {source}: expected one of {', '.join(SOURCES)}", err=True)
        raise typer.Exit(2)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    start_ray(cfg.ray.model_copy(update={"address": address}))
    try:
        actors = place_cameras(cfg, source)
        stats = supervise(actors, duration_s=duration, poll_s=poll, stop=stop)
        if duration:
            stats = stop_cameras(actors)
    except PlacementError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        typer.echo("driver stopped; the detached camera actors keep running", err=True)
        return
    typer.echo(json.dumps(stats, indent=2, default=str))
