"""``anonreid demo``: the whole system on one machine, then a summary measured against ground truth.

Starts an embedded Redis, a local Ray instance, the gallery (gRPC, in this process), one camera
actor per camera of the live synthetic world and the adversary actor; each camera actor renders its
own camera of the deterministic world, releases it paced by the wall clock and runs the full
pipeline on it, and the adversary attacks what the cameras emit on their audit tap
(``demo.adversary``). The simulated sensors are the stimulus, not the system under test: each is
rendered ``demo.render_ahead_s`` ahead of the clock (during set-up, the whole run when it is
shorter), so it does not take CPU from the pipeline it feeds; the adversary's attack loop runs at
the lowest CPU priority (``adversary.background``), so the cameras come first. Every node serves Prometheus metrics
(the gallery on ``gallery.metrics_port``, camera *i* on ``camera.metrics_port + i``). Ctrl-C (or
``--duration``) stops the cameras (each publishes its final sightings and waits for the acks), then
the gallery, Ray and Redis, in that order, and prints / writes the summary:

- per camera: events/s, windows/s, real-time factor (stream seconds per second of pipeline time;
  >= 1 means the node keeps up), stream rate (stream seconds per wall second; ~1 when the source is
  real-time paced and nothing falls behind), drops, sightings, detection precision / recall;
- the gallery's global identities;
- cross-camera association quality against the world's ground truth: IDF1 over the camera network
  (every ground-truth box of every window of every camera is an observation; its predicted identity
  is the gallery identity of the sighting that covers it) and identity purity;
- end-to-end latency from event time to identity assignment (gallery ack), p50 / p95, and where it
  goes: p50 / p95 / mean of each camera stage of a sighting (nodes/latency.py; ``gallery`` is the round
  trip) and the gallery's mean per stage of that round trip (transport, associate, persist, ack);
- the adversary's privacy verdicts (the latest score per camera, attack and metric against the policy).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from anonreid.orchestration.cli_common import (
    ConfigOption,
    SensorOption,
    SetOption,
    TimeUnitOption,
    resolve_config,
)

log = logging.getLogger(__name__)


def demo_cmd(
    duration: Annotated[float, typer.Option(help="stop after this many seconds (0 = demo.duration_s; 0 there = until Ctrl-C)")] = 0.0,
    json_path: Annotated[Path | None, typer.Option("--json", help="write the summary JSON here")] = None,
    fresh: Annotated[bool, typer.Option("--fresh/--keep", help="start from an empty embedded Redis (gallery)")] = True,
    source: Annotated[str, typer.Option(
        "--source", help="replay recordings instead of the live world, in real time: cam1=FILE,cam2=FILE (up to four; "
                         ".raw, .dat, .aedat4, .h5, .npz, Event-ReId .txt)")] = "",
    time_unit: TimeUnitOption = "",
    sensor: SensorOption = "",
    config: ConfigOption = None,
    set_: SetOption = None,
) -> None:
    """Run Redis, Ray, the gallery and four live cameras (or up to four recordings replayed in real time,
    --source; see anonreid.nodes.replay); print the summary at the end (Ctrl-C stops)."""
    from anonreid.nodes.replay import parse_sources, replay_config, replay_specs
    from anonreid.orchestration.cli_common import event_file_options

    cfg = resolve_config(config, set_)
    replays = None
    if source:
        try:
            replays = replay_specs(parse_sources(source), cfg.camera.packet_us, *event_file_options(cfg, time_unit, sensor))
        except ValueError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        cfg = replay_config(cfg, list(replays))
    try:
        summary = run_demo(cfg, duration or cfg.demo.duration_s or None, fresh=fresh, replays=replays)
    except KeyboardInterrupt:  # Ctrl-C before the cameras ran: everything started is already stopped
        typer.echo("interrupted during start-up; everything stopped", err=True)
        raise typer.Exit(130) from None
    print_summary(summary)
    out = json_path or (Path(cfg.demo.json_path) if cfg.demo.json_path else None)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(summary, indent=2))
        typer.echo(f"summary written to {out}")


def run_demo(
    cfg: Any, duration_s: float | None, fresh: bool = True, progress_every_s: float = 5.0,
    stop: threading.Event | None = None, replays: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Start everything, run until ``duration_s``, Ctrl-C or ``stop`` is set, stop everything (the cameras
    publish their final sightings first, as at the end of the duration); returns the summary."""
    import ray

    from anonreid.gallery.client import GalleryClient
    from anonreid.gallery.console.server import start_console
    from anonreid.gallery.service import GalleryServer
    from anonreid.nodes.actors import camera_actor_class
    from anonreid.nodes.adversary.actor import adversary_actor_class
    from anonreid.nodes.sources import SourceSpec
    from anonreid.orchestration.placement import placement_resources
    from anonreid.orchestration.ray_cluster import start_ray, stop_ray
    from anonreid.orchestration.redis_service import RedisService

    started = time.time()
    redis_service = RedisService(cfg.redis).start()
    server = None
    console = None
    owns_ray = False
    actors: dict[str, Any] = {}
    adversary = None
    try:
        if fresh and redis_service.embedded:
            redis_service.client().flushdb()
        owns_ray = not ray.is_initialized()
        start_ray(cfg.ray)
        gallery_cfg = world_gallery_config(cfg) if not replays else cfg.gallery.model_copy(
            update={"camera_ids": list(cfg.demo.cameras)})  # recordings: no world camera graph
        server = GalleryServer(gallery_cfg, redis_service.url, password=redis_service.password,
                               security=cfg.security)
        address = server.start()
        log.info("gallery at %s", address)
        console = start_console(cfg, address, redis_service.url, redis_service.password)
        if console is not None:
            typer.echo(f"operator console: {console.url}")
        gpu = float(ray.cluster_resources().get("GPU", 0))
        actor_cls = camera_actor_class(
            num_cpus=cfg.demo.actor_cpus, num_gpus=min(1.0, gpu / len(cfg.demo.cameras)) if gpu else 0.0
        )
        world = cfg.world.model_dump()
        for i, cam in enumerate(cfg.demo.cameras):
            spec = replays[cam] if replays else SourceSpec(
                kind="live", camera_id=cam, world=world, packet_us=cfg.camera.packet_us,
                render_ahead_s=cfg.demo.render_ahead_s, end_us=int((duration_s + 1) * 1e6) if duration_s else 0,
            )
            port = cfg.camera.metrics_port + i if cfg.camera.metrics_port else 0
            # the cameras' audit bursts (a full-frame E_an pass each) spread evenly over the interval
            camera_cfg = cfg.camera.model_copy(
                update={"audit_offset_s": cfg.camera.audit_offset_s + i * cfg.camera.audit_every_s / len(cfg.demo.cameras)}
            )
            actors[cam] = actor_cls.options(name=f"camera-{cam}", resources=placement_resources(cfg, cam)).remote(
                spec, address, redis_service.url, redis_service.password, camera_cfg, cfg.events, port, cfg.security
            )
        if cfg.demo.adversary:
            adversary_cfg = cfg.adversary.model_copy(update={"cameras": list(cfg.demo.cameras)})
            adversary = adversary_actor_class(num_cpus=cfg.demo.adversary_cpus).options(name="adversary").remote(
                adversary_cfg, redis_service.url, redis_service.password, cfg.world
            )
        ray.get([a.ping.remote() for a in actors.values()])  # models loaded, sources built
        if adversary is not None:
            ray.get(adversary.ping.remote())  # attackers loaded, enrollment rendered
        t_start = time.time()
        ray.get([a.start.remote(duration_s) for a in actors.values()])
        if adversary is not None:
            adversary.start.remote(None)
        log.info("%d cameras running%s", len(actors), f" for {duration_s:.0f} s" if duration_s else " (Ctrl-C stops)")
        try:
            next_report = time.monotonic() + progress_every_s
            while True:
                done = ray.get([a.wait.remote(0.5) for a in actors.values()])
                if all(done):
                    break
                if stop is not None and stop.is_set():
                    log.info("stop requested: stopping the cameras (they publish their final sightings first)")
                    break
                if time.monotonic() >= next_report:
                    next_report += progress_every_s
                    _progress(ray.get([a.stats.remote() for a in actors.values()]), time.time() - t_start)
        except KeyboardInterrupt:
            log.info("Ctrl-C: stopping the cameras (they publish their final sightings first)")
        stats = ray.get([a.stop.remote() for a in actors.values()])
        evaluations = ray.get([a.evaluation.remote() for a in actors.values()])
        adversary_stats = ray.get(adversary.stop.remote()) if adversary is not None else None
        client = GalleryClient(address, security=cfg.security)
        try:
            final_ids = gallery_assignments(client)
        finally:
            close = getattr(client, "close", None)
            if close is not None:
                close()
        summary = build_summary(stats, evaluations, final_ids, wall_s=time.time() - t_start)
        summary["latency_s"]["gallery_stages"] = server.metrics.stage_summary()
        summary["setup_s"] = t_start - started
        summary["privacy"] = privacy_summary(cfg, redis_service.client(), adversary_stats)
        summary["gallery_address"] = address
        summary["console_url"] = console.url if console is not None else None
        return summary
    finally:
        for a in actors.values():
            with contextlib.suppress(Exception):  # the actor may be gone already; it is killed below anyway
                ray.get(a.close.remote(), timeout=15)
            ray.kill(a)
        if adversary is not None:
            ray.kill(adversary)
        if console is not None:
            console.stop()
        if server is not None:
            server.stop()
        if owns_ray:
            stop_ray()
        redis_service.stop()


def privacy_summary(cfg: Any, redis_client: Any, adversary_stats: dict[str, Any] | None) -> dict[str, Any] | None:
    """The adversary's verdicts at the end of the demo (the console's privacy panel), with its own
    stats (attack rounds, samples per camera, missing attackers); None when the demo ran without it."""
    if adversary_stats is None:
        return None
    from anonreid.models.evaluation.privacy_policy import PrivacyPolicy, privacy_status
    from anonreid.orchestration.infra.audit_log import AuditLog

    status = privacy_status(
        AuditLog(redis_client).records(), PrivacyPolicy.load(cfg.adversary.policy or None), list(cfg.demo.cameras)
    )
    return {**status, "adversary": adversary_stats}


def world_gallery_config(cfg: Any) -> Any:
    """The gallery configuration with the live world's camera graph as its links, unless links are set.

    The world's transit times run from leaving one view to entering the next; detections start a
    little after a person enters and tracklets end a little after they leave, so the window is widened
    by ``demo.link_slack_min_s`` on the short side and ``demo.link_slack_max_s`` on the long side.
    """
    if cfg.gallery.camera_links:
        return cfg.gallery
    from anonreid.events.world import LiveWorld
    from anonreid.orchestration.config import CameraLink

    links = [
        CameraLink(
            src=e.src, dst=e.dst, min_transit_s=max(0.0, e.min_transit_s - cfg.demo.link_slack_min_s),
            max_transit_s=e.max_transit_s + cfg.demo.link_slack_max_s, bidirectional=False,
        )
        for e in LiveWorld(cfg.world).camera_graph()
        if e.src in cfg.demo.cameras and e.dst in cfg.demo.cameras
    ]
    return cfg.gallery.model_copy(update={"camera_links": links, "camera_ids": list(cfg.demo.cameras)})


def gallery_assignments(client: Any) -> dict[str, str]:
    """sighting id -> global identity, from the gallery's final state (identities + trajectories)."""
    out: dict[str, str] = {}
    for summary in client.list_identities(limit=10_000):
        identity = summary.identity_id
        trajectory = client.trajectory(identity)
        for step in getattr(trajectory, "steps", []):
            for sid in step.sighting_ids:
                out[sid] = identity
    return out


def build_summary(
    stats: list[dict[str, Any]], evaluations: list[dict[str, Any]], final_ids: dict[str, str], wall_s: float
) -> dict[str, Any]:
    """The demo's summary: per-camera throughput, global association quality, latency."""
    from anonreid.models.evaluation.association_metrics import identity_scores

    cameras = {}
    for s in stats:
        cameras[s["camera"]] = {
            "events_per_s": s["events_per_s"],
            "windows_per_s": s["windows_per_s"],
            "realtime_factor": s["realtime_factor"],
            "cpu_realtime_factor": s["cpu_realtime_factor"],
            "pipeline_cpu_s": s["pipeline_cpu_s"],
            "source_cpu_s": s["source_cpu_s"],
            "world_render_cpu_s": s.get("world_render_cpu_s"),
            "process_cpu_s": s["process_cpu_s"],
            "stream_rate": s["stream_rate"],
            "windows": s["windows"],
            "windows_dropped": s["windows_dropped"],
            "sightings": s["sightings_acked"],
            "sightings_pending": s["sightings_pending"],
            "audit_samples": s["audit_samples"],
            "audit_skipped_bursts": s["audit_skipped_bursts"],
            "audit_cpu_s": s["audit_cpu_s"],
            "detection": s["detection"],
            "error": s.get("error"),
        }
    acks: dict[str, str] = {}
    gt: list[str | None] = []
    pred: list[str | None] = []
    latencies: list[float] = []
    stages: list[dict[str, float]] = []
    for ev in evaluations:
        acks.update(ev["assignments"])
        latencies.extend(ev["latencies_s"])
        stages.extend(ev.get("latency_stages", []))
    for ev in evaluations:
        for gt_id, sid in ev["observations"]:
            gt.append(gt_id)
            pred.append(None if sid is None else final_ids.get(sid, acks.get(sid)))
    scores = identity_scores(gt, pred)
    lat = np.asarray(latencies, np.float64)
    rtfs = [c["realtime_factor"] for c in cameras.values()]
    # CPU cores the cameras used per wall second (pipeline + their live-world renderers + overheads)
    cores = sum(c["process_cpu_s"] for c in cameras.values()) / wall_s if wall_s > 0 else 0.0
    return {
        "wall_s": wall_s,
        "cameras": cameras,
        "min_realtime_factor": min(rtfs) if rtfs else 0.0,
        "min_stream_rate": min((c["stream_rate"] for c in cameras.values()), default=0.0),
        "camera_cpu_cores": cores,
        "total_windows_dropped": sum(c["windows_dropped"] for c in cameras.values()),
        "global_identities": len(set(final_ids.values()) or set(acks.values())),
        "sightings": sum(c["sightings"] for c in cameras.values()),
        "association": {**scores.as_dict(), "observations": len(gt)},
        "latency_s": {
            "count": len(lat),
            "p50": float(np.percentile(lat, 50)) if len(lat) else None,
            "p95": float(np.percentile(lat, 95)) if len(lat) else None,
            "stages": latency_breakdown(stages),
        },
    }


def latency_breakdown(stages: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """p50 / p95 / mean seconds of each stage over the sightings (each a dict stage -> seconds)."""
    names = list(dict.fromkeys(name for st in stages for name in st))
    out = {}
    for name in names:
        x = np.asarray([st.get(name, 0.0) for st in stages], np.float64)
        out[name] = {"p50": float(np.percentile(x, 50)), "p95": float(np.percentile(x, 95)), "mean": float(x.mean())}
    return out


def _progress(stats: list[dict[str, Any]], elapsed: float) -> None:
    parts = [
        f"{s['camera']}: {s['windows_per_s']:.1f} win/s rtf {s['realtime_factor']:.2f} "
        f"drop {s['windows_dropped']} sight {s['sightings_acked']}"
        for s in stats
    ]
    log.info("t=%.0fs  %s", elapsed, " | ".join(parts))


def print_summary(summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"anonreid demo — {summary['wall_s']:.0f} s")
    for col in ("camera", "events/s", "windows/s", "RT factor", "stream rate", "dropped", "sightings", "det P/R"):
        table.add_column(col, justify="right")
    for cam, c in summary["cameras"].items():
        d = c["detection"]
        table.add_row(
            cam, f"{c['events_per_s']:.0f}", f"{c['windows_per_s']:.1f}", f"{c['realtime_factor']:.2f}",
            f"{c['stream_rate']:.2f}", str(c["windows_dropped"]), str(c["sightings"]),
            f"{d['precision']:.2f}/{d['recall']:.2f}" if d["gt_boxes"] else "-",
        )
    console.print(table)
    a = summary["association"]
    lat = summary["latency_s"]
    console.print(
        f"global identities: {summary['global_identities']} (ground truth: {a['num_gt_identities']})  "
        f"IDF1 {a['idf1']:.3f} (IDP {a['idp']:.3f}, IDR {a['idr']:.3f})  purity {a['purity']:.3f}  "
        f"inverse purity {a['inverse_purity']:.3f}"
    )
    if lat["count"]:
        console.print(f"event time -> identity latency: p50 {lat['p50']:.2f} s, p95 {lat['p95']:.2f} s ({lat['count']} sightings)")
        console.print("  per stage, ms p50/p95 (mean): " + ", ".join(
            f"{k} {1e3 * v['p50']:.0f}/{1e3 * v['p95']:.0f} ({1e3 * v['mean']:.0f})" for k, v in lat["stages"].items()))
        gallery = lat.get("gallery_stages") or {}
        if gallery:
            console.print("  gallery round trip, mean ms: " + ", ".join(
                f"{k} {1e3 * v['mean_s']:.1f}" for k, v in gallery.items()))
    privacy = summary.get("privacy")
    if privacy is not None:
        adv = privacy["adversary"]
        took = adv.get("round_s")
        console.print(f"privacy: {privacy['overall']} ({privacy['num_records']} audit records, "
                      f"{adv['rounds']} attack rounds" + (f" of {took['mean']:.1f} s on average)" if took else ")"))
        for v in privacy["verdicts"]:
            if v["status"] != "not checked":
                console.print(f"  {v['camera']} {v['attack']} {v['metric']}: {_num(v['value'])} "
                              f"[{_num(v['ci'][0])}, {_num(v['ci'][1])}] (threshold {_num(v['threshold'])}, "
                              f"chance {_num(v['chance'])}) {v['status']}" + (f": {v['reason']}" if v["reason"] else ""))


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"
