"""Cost of sensor realism in the world's event simulator, measured in one process (docs/BENCHMARKS.md).

One person crosses each camera (a dataset pass) for ``--seconds`` of world time, simulated three ways in
the same process, interleaved, three times each (the minimum CPU time is kept): with the simulator of
git revision ``--before`` (the code before sensor realism existed), with today's simulator and realism
off (the default world: the event counts must match ``--before``), and with realism on.

    .venv/bin/python docs/sensor_realism_timing.py --resolution 320x240 --seconds 2
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import anonreid.events.world.scene as scene
from anonreid.events.world.build import World, build_world
from anonreid.events.world.schedule import pass_walk
from anonreid.orchestration.config import WorldConfig

ROOT = Path(__file__).resolve().parent.parent


def _simulator_at(revision: str) -> Any:
    """The ``EventSimulator`` class of ``events/world/simulator.py`` at a git revision."""
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{revision}:events/world/simulator.py"],
                            check=True, capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "simulator_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("simulator_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["simulator_before"] = module
    spec.loader.exec_module(module)
    return module.EventSimulator


def _pass(world: World, camera: int, simulator: Any, seconds: float) -> tuple[float, int]:
    """(CPU seconds, events) of one pass through ``camera`` with ``simulator`` as the event sensor."""
    scene.EventSimulator = simulator  # CameraSimulation builds its sensor through this name
    cam = world.cameras[camera]
    walk = pass_walk(world.people[camera], cam, int(seconds * 1e6), np.random.default_rng(camera))
    sim = scene.CameraSimulation(cam, lambda a, b: [walk], seed=camera)
    t = time.thread_time()
    n = len(sim.advance_to(int(seconds * 1e6)))
    return time.thread_time() - t, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resolution", default="320x240")
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--before", default="a503b29", help="git revision of the simulator before realism")
    args = ap.parse_args()
    today = scene.EventSimulator
    off = build_world(WorldConfig(resolution=args.resolution))
    on = build_world(WorldConfig(resolution=args.resolution, realism={"enabled": True}))
    variants = (("before", off, _simulator_at(args.before)), ("off", off, today), ("on", on, today))
    best: dict[tuple[int, str], tuple[float, int]] = {}
    for _ in range(3):
        for cam in range(4):
            for name, world, simulator in variants:
                cpu, n = _pass(world, cam, simulator, args.seconds)
                best[(cam, name)] = min(best.get((cam, name), (cpu, n)), (cpu, n))
    print(f"{args.resolution}, {args.seconds} s of world time per camera, CPU s (min of 3) and events")
    for cam in range(4):
        (b, nb), (f, nf), (o, no) = (best[(cam, k)] for k in ("before", "off", "on"))
        print(f"cam{cam + 1}: before {b:.3f} s ({nb} ev)  off {f:.3f} s ({nf} ev)  on {o:.3f} s ({no} ev)  "
              f"off/before {f / b:.3f}  on/off {o / f:.3f}  same events off/before: {nb == nf}")
    tot = {k: sum(best[(cam, k)][0] for cam in range(4)) for k in ("before", "off", "on")}
    print(f"all: off/before {tot['off'] / tot['before']:.3f}  on/off {tot['on'] / tot['off']:.3f}")


if __name__ == "__main__":
    main()
