"""``anonreid bench load``: N replayed cameras against one gallery — sustained throughput, where
backpressure starts, and memory over a soak.

Setup: the first ``--record-s`` seconds of each of the live world's four cameras are rendered once to
HDF5; camera ``load-i`` replays the recording of camera ``cam{i % 4 + 1}`` in a loop (timestamps shifted
by the recording's length each time, so the stream never goes backwards). Every camera is a Ray actor
running the real :class:`~anonreid.nodes.actors.CameraService` (anonymize, detect, track, embed,
publish over gRPC); the gallery (gRPC, FAISS, embedded Redis with append-only persistence) runs in this
process.

For each N in ``--cameras`` (repeatable; e.g. 4, 8, 16):

1. **max speed** for ``--seconds`` (the soak; default 600): the replay is not paced and the cameras
   wait when their queue is full. Sustained throughput = events, windows and acknowledged sightings per
   second after a warm-up (the first 20 %, at most 30 s); ``realtime_capacity`` = the stream seconds
   processed per wall second, summed over cameras (how many real-time cameras this machine sustains).
   Memory of this process (gallery), of every camera actor and of redis-server, sampled every 5 s:
   start, peak, end and the slope after warm-up (MiB per minute; a leak shows as a steady slope), as
   the sum of RSS and as the sum of PSS (proportional set size: a page shared by k processes counts
   1/k in each, so the sum is the physical memory they take). The RSS sum counts the shared libraries
   (torch's are ~0.5 GiB) once per process and overstates what N actors need by about that much each.
2. **paced** for ``--paced-seconds`` (default 30; 0 skips): the same cameras replayed in real time (speed
   1), dropping their oldest windows when they fall behind, as a live camera does. Backpressure has
   started when windows are dropped (``drop_fraction`` > 0) or the queues stay full.

``backpressure_starts_at`` is the smallest N with drops in the paced phase (null if none). Prints JSON
(and writes it with ``--json FILE``); record results in docs/BENCHMARKS.md with the machine.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from anonreid.orchestration.cli_common import ConfigOption, SetOption, resolve_config

log = logging.getLogger(__name__)
WORLD_CAMERAS = ("cam1", "cam2", "cam3", "cam4")
MIB = 1024 * 1024


def load_camera_class() -> Any:
    """:class:`~anonreid.nodes.actors.CameraService` with its file source replayed in a loop (time-shifted),
    paced or not (built on call: the CLI must not import the camera stack to print its help)."""
    from anonreid.nodes.actors import CameraService

    class LoadCamera(CameraService):
        """A camera service whose file source is replayed in a loop (time-shifted), paced or not."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            from anonreid.events.io import read_events
            from anonreid.nodes.sources import split_packets

            events = read_events(self.spec.path)
            t0 = int(events["t"][0])
            self._loop_us = int(events["t"][-1]) - t0 + self.spec.packet_us
            self._packets = list(split_packets(events, self.spec.packet_us))
            self.source.packets = self._looping  # type: ignore[method-assign]

        def _looping(self) -> Iterator[Any]:
            wall0, t_first = time.time(), int(self._packets[0]["t"][0])
            self.source.clock_anchor = wall0 - t_first / 1e6
            k = 0
            while not self._stop.is_set():
                offset = k * self._loop_us
                for p in self._packets:
                    if self._stop.is_set():
                        return
                    shifted = p.copy()
                    shifted["t"] += offset
                    if self.spec.realtime:
                        delay = wall0 + (int(shifted["t"][-1]) - t_first) / 1e6 - time.time()
                        if delay > 0:
                            self._stop.wait(delay)
                    yield shifted
                k += 1

        def pid(self) -> int:
            return os.getpid()

    return LoadCamera


def _record(out: Path, seconds: float) -> dict[str, Path]:
    from anonreid.events.io import write_hdf5
    from anonreid.events.types import SensorSize, concat_events
    from anonreid.events.world import LiveWorld
    from anonreid.orchestration.config import WorldConfig

    world_cfg = WorldConfig()
    world = LiveWorld(world_cfg)
    files = {}
    for cam in WORLD_CAMERAS:
        packets = []
        for p in world.camera_stream(cam, start_us=0, realtime=False, packet_us=10_000):
            if len(p) and p["t"][0] >= seconds * 1e6:
                break
            packets.append(p)
        files[cam] = out / f"{cam}.h5"
        write_hdf5(files[cam], concat_events(packets), SensorSize.parse(world_cfg.resolution))
    return files


def _machine() -> dict[str, Any]:
    import psutil

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name")), cpu)
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "load_average_1m": os.getloadavg()[0], "python": platform.python_version()}


def _memory(pids: list[int]) -> tuple[float, float]:
    """(sum of RSS, sum of PSS) of ``pids`` in MiB; a process gone meanwhile counts 0, and one whose PSS
    cannot be read (another user's) counts its RSS there too."""
    import psutil

    rss = pss = 0
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            try:
                info = proc.memory_full_info()  # reads /proc/PID/smaps_rollup: PSS and USS
            except psutil.AccessDenied:
                info = proc.memory_info()
        except psutil.Error:
            continue
        rss += info.rss
        pss += getattr(info, "pss", info.rss)  # PSS is Linux's; elsewhere RSS stands in
    return rss / MIB, pss / MIB


def _totals(stats: list[dict[str, Any]]) -> dict[str, float]:
    keys = ("events", "windows", "windows_dropped", "sightings_acked", "stream_s", "queue_depth")
    return {k: float(sum(s[k] for s in stats)) for k in keys}


def _phase(n: int, files: dict[str, Path], address: str, redis_pid: int | None, seconds: float, realtime: bool,
           cfg: Any) -> dict[str, Any]:
    import ray

    from anonreid.nodes.sources import SourceSpec

    remote: Any = ray.remote
    cls = remote(num_cpus=0.01, max_concurrency=4)(load_camera_class())
    actors = []
    for i in range(n):
        cam = f"load-{i + 1}"
        spec = SourceSpec(kind="file", camera_id=cam, path=str(files[WORLD_CAMERAS[i % 4]]), realtime=realtime)
        actors.append(cls.remote(spec, address, None, None, cfg.camera, cfg.events, None, cfg.security))
    try:
        pids = ray.get([a.pid.remote() for a in actors], timeout=600)
        ray.get([a.start.remote(None) for a in actors])
        t_start = time.monotonic()
        warmup = min(30.0, 0.2 * seconds)
        samples: list[tuple[float, float, float]] = []  # (elapsed, RSS sum, PSS sum)
        base: tuple[float, dict[str, float]] | None = None
        watched = [os.getpid(), *pids, *([redis_pid] if redis_pid else [])]
        while (elapsed := time.monotonic() - t_start) < seconds:
            samples.append((elapsed, *_memory(watched)))
            if base is None and elapsed >= warmup:
                base = (elapsed, _totals(ray.get([a.stats.remote() for a in actors])))
            time.sleep(min(5.0, max(0.0, seconds - elapsed)))
        stats = ray.get([a.stop.remote(60) for a in actors])
        wall = time.monotonic() - t_start
        end = _totals(stats)
        b_t, b = base if base is not None else (0.0, dict.fromkeys(end, 0.0))
        span = max(wall - b_t, 1e-9)
        after = [(t, m) for t, _, m in samples if t >= b_t]
        slope = 0.0
        if len(after) >= 2:
            import numpy as np

            ts, ms = np.array(after).T
            slope = float(np.polyfit(ts / 60, ms, 1)[0])
        windows = end["windows"] + end["windows_dropped"]
        errors = [s["error"] for s in stats if s.get("error")]
        return {
            "cameras": n, "mode": "realtime" if realtime else "max_speed", "wall_s": round(wall, 1),
            "events_per_s": (end["events"] - b["events"]) / span,
            "windows_per_s": (end["windows"] - b["windows"]) / span,
            "sightings_acked_per_s": (end["sightings_acked"] - b["sightings_acked"]) / span,
            "realtime_capacity": (end["stream_s"] - b["stream_s"]) / span,
            "per_camera_stream_rate": [round(s["stream_rate"], 3) for s in stats],
            "windows_dropped": int(end["windows_dropped"]),
            "drop_fraction": end["windows_dropped"] / windows if windows else 0.0,
            "sightings_acked": int(end["sightings_acked"]),
            "sightings_pending": int(sum(s["sightings_pending"] for s in stats)),
            "memory_mib": {**{f"{kind}_{at}": value for kind, col in (("rss", 1), ("pss", 2))
                              for at, value in (("start", samples[0][col] if samples else 0.0),
                                                ("peak", max((s[col] for s in samples), default=0.0)),
                                                ("end", samples[-1][col] if samples else 0.0))},
                           "slope_mib_per_min": slope, "processes": len(watched)},
            "errors": errors,
        }
    finally:
        for a in actors:
            ray.kill(a)


def _runs_with(n: int, files: dict[str, Path], work: Path, seconds: float, paced_seconds: float, cfg: Any) -> list[dict[str, Any]]:
    """The max-speed (and paced) runs of ``n`` cameras against a fresh Redis (append-only, as in
    production) and gallery, the world's cameras as ids; every service started here is stopped here."""
    from anonreid.gallery.service import GalleryServer
    from anonreid.orchestration.ray_cluster import start_ray, stop_ray
    from anonreid.orchestration.redis_service import RedisService

    redis_service = RedisService(cfg.redis.model_copy(update={"url": "", "embedded_dir": str(work / f"redis-{n}")}))
    redis_service.start()
    gallery: GalleryServer | None = None
    try:
        ids = [f"load-{i + 1}" for i in range(n)]
        gallery = GalleryServer(cfg.gallery.model_copy(update={"port": 0, "metrics_port": 0, "camera_ids": ids,
                                                               "camera_links": []}),
                                redis_service.url, redis_service.password, serve_metrics=False, security=cfg.security)
        address = gallery.start()
        start_ray(cfg.ray)
        embedded = getattr(redis_service, "_embedded", None)
        pid = embedded.pid if embedded else None
        runs = [_phase(n, files, address, pid, seconds, False, cfg)]
        if paced_seconds > 0:
            runs.append(_phase(n, files, address, pid, paced_seconds, True, cfg))
        runs[0]["gallery_sightings"] = len(gallery.gallery or [])
        typer.echo(json.dumps(runs), err=True)
        return runs
    finally:
        if gallery is not None:
            gallery.stop(0)
        redis_service.stop()
        stop_ray()


def main(
    cameras: Annotated[list[int] | None, typer.Option("--cameras", help="cameras per run (repeatable: 4, 8, 16)")] = None,
    seconds: Annotated[float, typer.Option(help="soak length of each max-speed run")] = 600.0,
    paced_seconds: Annotated[float, typer.Option(help="length of each real-time run (0 skips it)")] = 30.0,
    record_s: Annotated[float, typer.Option(help="seconds of each world camera recorded for the replay")] = 6.0,
    json_out: Annotated[Path | None, typer.Option("--json", help="write the JSON result here")] = None,
    config: ConfigOption = None,
    set_: SetOption = None,
) -> None:
    """N replayed cameras at maximum speed: sustained throughput, backpressure onset, memory over a soak."""

    logging.basicConfig(level=logging.WARNING)
    cfg = resolve_config(config, set_)
    counts = sorted(set(cameras or [4, 8, 16]))
    work = Path(tempfile.mkdtemp(prefix="anonreid-load-"))
    result: dict[str, Any] = {
        "benchmark": "load", "machine": _machine(),
        "seconds": seconds, "paced_seconds": paced_seconds, "record_s": record_s, "runs": [],
    }
    try:
        t0 = time.monotonic()
        files = _record(work, record_s)
        result["record_wall_s"] = round(time.monotonic() - t0, 1)
        for n in counts:
            result["runs"].extend(_runs_with(n, files, work, seconds, paced_seconds, cfg))
    finally:  # also when a service fails to start: nothing left running, nothing left on disk
        shutil.rmtree(work, ignore_errors=True)
    paced = [r for r in result["runs"] if r["mode"] == "realtime"]
    result["backpressure_starts_at"] = next((r["cameras"] for r in paced if r["windows_dropped"] > 0), None)
    text = json.dumps(result, indent=2)
    typer.echo(text)
    if json_out is not None:
        json_out.write_text(text)
