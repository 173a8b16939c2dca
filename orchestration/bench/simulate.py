"""``anonreid bench simulate``: cost of the synthetic world per camera, offline and live.

Offline: each camera of the live world (people arriving, several in view at times) is simulated for
``--seconds`` of world time with ``realtime=False``, and a single person crossing each camera
(a dataset pass, someone always in view) is simulated too; reported per camera are the simulated
events per second of world time, the CPU seconds per world second (share of one core) and the
real-time factor (world seconds per CPU second). Live: four processes, one per camera, each run
``LiveWorld.camera_stream(realtime=True)`` for ``--live-seconds`` at the default resolution, as the
demo's camera actors do; reported are each camera's CPU share and how late its packets were.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import platform
import time
from pathlib import Path
from typing import Annotated, Any

import typer

CAMERAS = ("cam1", "cam2", "cam3", "cam4")


def _offline(resolution: str, seconds: float, start_s: float) -> list[dict[str, Any]]:
    import numpy as np

    from anonreid.events.world.live import LiveWorld
    from anonreid.events.world.scene import CameraSimulation
    from anonreid.events.world.schedule import pass_walk
    from anonreid.orchestration.config import WorldConfig

    cfg = WorldConfig(resolution=resolution)
    world = LiveWorld(cfg)
    rows = []
    for ci, cam in enumerate(CAMERAS):
        start = int(start_s * 1e6) // cfg.window_us * cfg.window_us
        stream = world.camera_stream(cam, start_us=start, realtime=False, packet_us=cfg.window_us)
        n_packets = round(seconds * 1e6 / cfg.window_us)
        t = time.thread_time()
        events = sum(len(next(stream)) for _ in range(n_packets))
        cpu = time.thread_time() - t
        sim_s = n_packets * cfg.window_us * 1e-6
        in_view = np.mean([len(world.walks(cam, s, s + 1)) for s in range(start, start + int(sim_s * 1e6), 100_000)])
        # one person always crossing (a dataset pass)
        camera = world.world.camera(cam)
        walk = pass_walk(world.world.people[ci], camera, int(sim_s * 1e6), np.random.default_rng(ci))
        sim = CameraSimulation(camera, lambda a, b: [walk], seed=ci, slot_us=cfg.window_us)  # noqa: B023
        t = time.thread_time()
        pass_events = len(sim.advance_to(int(sim_s * 1e6)))
        pass_cpu = time.thread_time() - t
        rows.append({
            "resolution": resolution, "camera": cam, "world_seconds": round(sim_s, 3),
            "live_schedule": {"people_in_scene_mean": round(float(in_view), 2),
                              "events_per_s": round(events / sim_s), "cpu_share_of_one_core": round(cpu / sim_s, 3),
                              "realtime_factor": round(sim_s / cpu, 2)},
            "single_pass": {"events_per_s": round(pass_events / sim_s),
                            "cpu_share_of_one_core": round(pass_cpu / sim_s, 3),
                            "realtime_factor": round(sim_s / pass_cpu, 2),
                            "render_fps": round(sim.stats.frames / sim_s, 1)},
        })
    return rows


def _live_worker(cam: str, resolution: str, seconds: float, start_s: float, out: Any) -> None:
    import torch

    torch.set_num_threads(1)
    from anonreid.events.world.live import LiveWorld
    from anonreid.orchestration.config import WorldConfig

    cfg = WorldConfig(resolution=resolution)
    world = LiveWorld(cfg)
    packet_us = 10_000
    start = int(start_s * 1e6) // cfg.window_us * cfg.window_us
    stream = world.camera_stream(cam, start_us=start, realtime=True, packet_us=packet_us)
    first = next(stream)  # builds the simulator (backgrounds, first frame) before the clock starts
    cpu0, wall0 = time.process_time(), time.monotonic()
    lags, events = [], len(first)
    n = round(seconds * 1e6 / packet_us)
    for k in range(n):
        pkt = next(stream)
        events += len(pkt)
        due = wall0 + (k + 1) * packet_us * 1e-6
        lags.append(time.monotonic() - due)
    cpu = time.process_time() - cpu0
    wall = time.monotonic() - wall0
    out.put({"camera": cam, "events_per_s": round(events / seconds), "cpu_share_of_one_core": round(cpu / wall, 3),
             "max_lag_ms": round(max(lags) * 1e3, 1), "final_lag_ms": round(lags[-1] * 1e3, 1),
             "wall_s": round(wall, 2)})


def _live(resolution: str, seconds: float, start_s: float) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_live_worker, args=(c, resolution, seconds, start_s, q)) for c in CAMERAS]
    for p in procs:
        p.start()
    rows = sorted((q.get(timeout=seconds * 10 + 120) for _ in procs), key=lambda r: r["camera"])
    for p in procs:
        p.join()
    keeps_up = all(r["final_lag_ms"] < 100 for r in rows)
    return {"resolution": resolution, "seconds": seconds, "cameras": rows, "keeps_up_with_real_time": keeps_up,
            "total_cpu_share": round(sum(r["cpu_share_of_one_core"] for r in rows), 3)}


def main(
    json_file: Annotated[Path | None, typer.Option("--json", help="also write the results to this file")] = None,
    seconds: Annotated[float, typer.Option(help="world seconds simulated per camera offline")] = 5.0,
    live_seconds: Annotated[float, typer.Option(help="wall seconds of the four-camera live run (0: skip)")] = 20.0,
    resolutions: Annotated[str, typer.Option(help="comma-separated resolutions for the offline part")] = "640x480,320x240",
    live_resolution: Annotated[str, typer.Option(help="resolution of the live run")] = "320x240",
    start_s: Annotated[float, typer.Option(help="world time to start at (the world fills up first)")] = 20.0,
) -> None:
    """Simulated events/s and real-time factor per camera; live four-camera check on this machine."""
    import os

    import torch

    torch.set_num_threads(1)
    result: dict[str, Any] = {
        "benchmark": "simulate",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "processor": platform.processor(),
                    "torch": torch.__version__, "torch_threads": 1},
        "offline": [row for res in resolutions.split(",") if res for row in _offline(res.strip(), seconds, start_s)],
    }
    if live_seconds > 0:
        result["live"] = _live(live_resolution, live_seconds, start_s)
    text = json.dumps(result, indent=1)
    typer.echo(text)
    if json_file is not None:
        json_file.write_text(text + "\n")
