"""``anonreid bench voxel``: events/s of the voxel-grid kernels, against tonic and a plain np.add.at.

All implementations run in the same process on the same random events (uniform pixels on a 640x480
sensor, sorted timestamps over 33.3 ms windows' worth of time, polarity +-1), single-threaded
(``torch.set_num_threads(1)``, and the BLAS/OpenMP thread variables set before numpy is used), B = 5,
without normalisation so that only the accumulation formula is compared. Each measurement is the best
of ``--repeats`` runs, taken round-robin over the implementations (so that a change of load on a shared
machine hits all of them alike); ``events_per_s`` and the ratios use process CPU time (steadier on a
shared machine), ``wall_events_per_s`` the wall clock. The load average before and after is recorded.
Prints JSON (and writes it to ``--json FILE``).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer

DEFAULT_SIZES = "1000000,5000000,20000000"
WIDTH, HEIGHT, BINS = 640, 480, 5


def np_add_at_voxel(events: Any, num_bins: int, height: int, width: int) -> Any:
    """The formula written the obvious way with ``np.add.at`` (E2VID's scaling, no normalisation)."""
    import numpy as np

    t = events["t"]
    span = int(t[-1] - t[0]) or 1
    ts = (num_bins - 1) * (t - t[0]) / span
    tis = ts.astype(np.int64)
    dts = ts - tis
    p = events["p"].astype(np.float64)
    pix = events["x"].astype(np.int64) + events["y"].astype(np.int64) * width
    grid = np.zeros(num_bins * height * width, dtype=np.float64)
    np.add.at(grid, pix + tis * height * width, p * (1.0 - dts))
    ok = tis + 1 < num_bins
    np.add.at(grid, pix[ok] + (tis[ok] + 1) * height * width, (p * dts)[ok])
    return grid.reshape(num_bins, height, width).astype(np.float32)


def _best_times(impls: dict[str, Callable[[], Any]], repeats: int) -> dict[str, tuple[float, float]]:
    """Best wall-clock and best process-CPU seconds of each implementation over ``repeats`` rounds, one
    run of each per round. On a shared machine the CPU time is the steadier number (it leaves out the
    time other processes held the core), and the rounds spread load changes over all implementations."""
    best = {name: (float("inf"), float("inf")) for name in impls}
    for _ in range(repeats):
        for name, fn in impls.items():
            w0, c0 = time.perf_counter(), time.process_time()
            fn()
            wall, cpu = time.perf_counter() - w0, time.process_time() - c0
            best[name] = (min(best[name][0], wall), min(best[name][1], cpu))
    return best


def _machine() -> dict[str, Any]:
    model = platform.processor() or "unknown"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return {"cpu": model, "nproc": os.cpu_count(), "python": platform.python_version()}


def main(
    json_path: Annotated[Path | None, typer.Option("--json", help="also write the JSON result to this file")] = None,
    sizes: Annotated[str, typer.Option(help="comma-separated event counts")] = DEFAULT_SIZES,
    repeats: Annotated[int, typer.Option(min=1, help="runs per measurement (best is kept)")] = 3,
    tonic: Annotated[bool, typer.Option(help="include tonic's voxel grid (needs the `bench` extra)")] = True,
    add_at: Annotated[bool, typer.Option(help="include the plain np.add.at implementation")] = True,
    seed: Annotated[int, typer.Option(help="random seed of the events")] = 0,
) -> None:
    """Events/s of the numpy and torch voxel grids on random 640x480 events, B=5, single thread."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    import numpy as np
    import torch

    from anonreid.events import make_events
    from anonreid.events.voxel import events_to_voxel, events_to_voxel_torch
    from anonreid.events.windowing import DEFAULT_WINDOW_US

    torch.set_num_threads(1)
    tonic_fn: Callable[..., Any] | None = None
    if tonic:
        try:
            from tonic.functional import to_voxel_grid_numpy

            tonic_fn = to_voxel_grid_numpy
        except ImportError:
            typer.echo("tonic is not installed (pip install 'anonreid[bench]'); skipping it", err=True)
    rng = np.random.default_rng(seed)
    load_before = os.getloadavg()
    results = []
    for n in (int(s) for s in sizes.split(",") if s.strip()):
        ev = make_events(
            np.sort(rng.integers(0, max(n // 30, DEFAULT_WINDOW_US), n)),
            rng.integers(0, WIDTH, n), rng.integers(0, HEIGHT, n), rng.choice(np.array([-1, 1], np.int8), n),
        )
        impls: dict[str, Callable[[], Any]] = {
            "anonreid_numpy": partial(events_to_voxel, ev, BINS, HEIGHT, WIDTH, normalize=False),
            "anonreid_torch_cpu": partial(events_to_voxel_torch, ev, BINS, HEIGHT, WIDTH, normalize=False),
        }
        if add_at:
            impls["np_add_at"] = partial(np_add_at_voxel, ev, BINS, HEIGHT, WIDTH)
        if tonic_fn is not None:
            # tonic rewrites polarity 0 -> -1 in place, so it gets its own copy (outside the timing)
            tonic_ev = ev.copy()
            impls["tonic"] = partial(tonic_fn, tonic_ev, (WIDTH, HEIGHT, 2), n_time_bins=BINS)
        row: dict[str, Any] = {"events": n}
        best = _best_times(impls, repeats)
        for name, (wall, cpu) in best.items():
            row[name] = {"cpu_seconds": round(cpu, 4), "events_per_s": round(n / cpu),
                         "wall_seconds": round(wall, 4), "wall_events_per_s": round(n / wall)}
        for base in ("tonic", "np_add_at"):
            if base in best:
                for name in ("anonreid_numpy", "anonreid_torch_cpu"):
                    # from the unrounded times: a few ms rounded to 0.1 ms would move the ratio by percents
                    row[f"{name}_vs_{base}"] = round(best[base][1] / best[name][1], 2)
        results.append(row)
        typer.echo(f"{n:>10} events: " + ", ".join(
            f"{k} {v['events_per_s'] / 1e6:.1f} M/s" for k, v in row.items() if isinstance(v, dict)
        ), err=True)
    out = {
        "benchmark": "voxel",
        "grid": {"width": WIDTH, "height": HEIGHT, "bins": BINS, "normalize": False},
        "threads": 1,
        "repeats": repeats,
        "machine": _machine(),
        "load_average_1min": {"before": round(load_before[0], 2), "after": round(os.getloadavg()[0], 2)},
        "versions": {"numpy": np.__version__, "torch": torch.__version__},
        "results": results,
    }
    text = json.dumps(out, indent=2)
    if json_path is not None:
        json_path.write_text(text + "\n")
    typer.echo(text)
