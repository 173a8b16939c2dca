"""One camera's scene advanced through time: people rendered in regions, fed to the event simulator.

:class:`CameraSimulation` owns a camera's :class:`~anonreid.events.world.simulator.EventSimulator` and
advances it slot by slot (fixed slots of ``slot_us``, aligned to multiples of ``slot_us`` so any caller
gets identical output however it chunks time). In each slot it

1. asks the walk provider which walks overlap the slot,
2. chooses the number of frames with the adaptive rule of :mod:`~anonreid.events.world.simulator`,
3. computes the people's boxes over the slot (and the previous frame), merges overlapping ones into
   regions, renders only those regions (background reflectance is cached per camera) and
4. passes the log frames to the simulator, which adds noise over the whole sensor.

The state after a slot is the frame at its end, so :meth:`CameraSimulation.reference_frame` gives the
paired intensity camera's image for the window that ends there.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch

from anonreid.events.detection import merge_overlapping_boxes
from anonreid.events.types import SensorSize, concat_events, empty_events
from anonreid.events.windowing import DEFAULT_WINDOW_US
from anonreid.events.world.cameras import Camera
from anonreid.events.world.render import Geometry, PersonInstance, rasterize
from anonreid.events.world.schedule import Walk
from anonreid.events.world.simulator import EventSimulator, log_intensity

WalkProvider = Callable[[float, float], list[Walk]]


@dataclass
class SimStats:
    """Counters of a simulation (for benchmarks and the adaptive-rate check)."""

    slots: int = 0
    frames: int = 0
    capped_slots: int = 0
    rendered_pixels: int = 0
    max_log_step: float = 0.0
    events: int = 0
    extra: dict[str, float] = field(default_factory=dict)


@contextmanager
def torch_threads(n: int = 1) -> Iterator[None]:
    """Run torch with ``n`` intra-op threads inside the block (rendering works on small tensors, where
    extra threads only contend with the other cameras for the cores), then restore the setting."""
    old = torch.get_num_threads()
    if old != n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if old != n:
            torch.set_num_threads(old)


def to_uint8(radiance: np.ndarray, white: float = 1.0) -> np.ndarray:
    """Linear radiance -> gamma-encoded 8-bit image (the reference camera's response)."""
    return (np.clip(radiance / white, 0, 1) ** (1 / 2.2) * 255 + 0.5).astype(np.uint8)


class CameraView:
    """Stateless rendering of one camera: any instant, any walk (ground-truth frames and boxes).

    Holds the per-walk :class:`PersonInstance` cache and the camera's cached background.
    """

    def __init__(self, camera: Camera, walks: WalkProvider) -> None:
        self.camera, self.walks = camera, walks
        self.bg_refl = torch.from_numpy(camera.background / camera.light_map)
        self.light = torch.from_numpy(camera.light_map)
        self._instances: dict[Walk, PersonInstance] = {}

    def instance(self, walk: Walk) -> PersonInstance:
        inst = self._instances.get(walk)
        if inst is None:
            inst = self._instances[walk] = PersonInstance.build(walk.person, walk, self.camera)
        return inst

    def prune(self, t_us: float, margin_us: float) -> None:
        """Forget walks that ended before ``t_us - margin_us``."""
        for w in [w for w in self._instances if w.t_end_us + margin_us < t_us]:
            del self._instances[w]

    def render_full(self, t_us: float) -> np.ndarray:
        """(H, W) linear radiance of the whole frame at ``t_us``."""
        walks = [w for w in self.walks(t_us - 1, t_us + 1) if w.t_start_us <= t_us < w.t_end_us]
        insts = [self.instance(w) for w in walks]
        geoms = [i.geometry(np.array([t_us], np.float64)) for i in insts]
        with torch_threads(1):
            refl = rasterize(insts, geoms, self.bg_refl[None], 0, 0)
        gain = float(self.camera.flicker_gain(np.array([t_us * 1e-6]))[0])
        return (refl[0] * self.light * gain).numpy()

    def boxes(self, walks: list[Walk], t0_us: float, t1_us: float) -> np.ndarray:
        """(K, 4) union boxes of each walk's person over [t0, t1] (clipped; NaN rows when not in view).

        A person counts as in view when at least 30 % of the box lies inside the image and the
        visible part is at least 4 x 8 pixels.
        """
        return self.boxes_over(walks, np.array([t0_us]), np.array([t1_us]))[0]

    def boxes_over(self, walks: list[Walk], t0_us: np.ndarray, t1_us: np.ndarray) -> np.ndarray:
        """(N, K, 4): :meth:`boxes` for N intervals at once (one pose evaluation per walk for all of
        them, which is what makes per-window ground truth cheap for a batch of windows)."""
        t0 = np.asarray(t0_us, np.float64).reshape(-1)
        t1 = np.asarray(t1_us, np.float64).reshape(-1)
        out = np.full((len(t0), len(walks), 4), np.nan, np.float32)
        ts = np.linspace(t0, t1, 4, axis=1)  # (N, 4) sample times per interval
        size = np.array([self.camera.width, self.camera.height], np.float64)
        for k, w in enumerate(walks):
            on = (ts >= w.t_start_us) & (ts < w.t_end_us)
            rows = np.flatnonzero(on.any(axis=1))
            if len(rows) == 0:
                continue
            b = self.instance(w).geometry(ts[on]).boxes()  # (M, 4), row-major over ``on``
            lo = np.full((*ts.shape, 2), np.inf)
            hi = np.full((*ts.shape, 2), -np.inf)
            lo[on], hi[on] = b[:, :2], b[:, 2:]
            p1, p2 = lo.min(axis=1)[rows], hi.max(axis=1)[rows]  # (R, 2) union over the samples
            area = np.maximum(p2[:, 0] - p1[:, 0], 1e-6) * np.maximum(p2[:, 1] - p1[:, 1], 1e-6)
            c1, c2 = np.clip(p1, 0, size), np.clip(p2, 0, size)
            wh = c2 - c1
            inside = np.maximum(wh[:, 0], 0) * np.maximum(wh[:, 1], 0)
            ok = (inside >= 0.3 * area) & (wh[:, 0] >= 4) & (wh[:, 1] >= 8)
            out[rows[ok], k] = np.concatenate([c1, c2], axis=1)[ok]
        return out


class CameraSimulation:
    """Renders ``camera`` with the walks from ``walks`` and simulates its event sensor from ``t0_us``."""

    def __init__(self, camera: Camera, walks: WalkProvider, seed: int | np.random.SeedSequence,
                 t0_us: int = 0, slot_us: int = DEFAULT_WINDOW_US) -> None:
        self.camera, self.walks, self.slot_us = camera, walks, slot_us
        self.view = CameraView(camera, walks)
        self.sensor = SensorSize(camera.width, camera.height)
        self.params = camera.sensor
        self.stats = SimStats()
        self.t_us = int(t0_us)
        self._pending = empty_events()
        first = self.view.render_full(self.t_us)
        self.sim = EventSimulator(self.sensor, self.params, log_intensity(first, self.params.log_eps),
                                  camera.background, seed, t0_us)
        light = max(camera.light_level, 1e-3)
        self._bg_range = (float(camera.background.min()) / light, float(camera.background.max()) / light)

    def boxes(self, walks: list[Walk], t0_us: float, t1_us: float) -> np.ndarray:
        return self.view.boxes(walks, t0_us, t1_us)

    def reference_frame(self) -> np.ndarray:
        """(H, W) uint8 intensity frame at the current time (the end of the last slot)."""
        return to_uint8(np.exp(self.sim.level) - self.params.log_eps)

    def _frame_count(self, insts: list[PersonInstance], t0: float, t1: float) -> int:
        """Frames to render in (t0, t1]: the adaptive rule of the simulator module's docstring."""
        dt = (t1 - t0) * 1e-6
        if not insts and self.camera.flicker_hz <= 0:
            return 1  # nothing moves: one frame closes the slot
        rate = max((i.log_contrast(self._bg_range) * i.max_speed_px for i in insts), default=0.0)
        if self.camera.flicker_hz > 0:
            rate += 2 * math.pi * self.camera.flicker_hz * self.camera.flicker_amp
        n = math.ceil(rate * dt / self.params.max_log_step)
        lo_n = max(1, math.ceil(self.params.min_fps * dt - 1e-3))
        hi_n = max(lo_n, math.floor(self.params.max_fps * dt + 1e-3))
        if n > hi_n:
            self.stats.capped_slots += 1
        return int(min(max(n, lo_n), hi_n))

    # ---- stepping --------------------------------------------------------------------------------
    def _slot(self, t1: int) -> np.ndarray:
        t0 = self.t_us
        walks = self.walks(t0, t1)
        insts = [self.view.instance(w) for w in walks]
        n = self._frame_count(insts, t0, t1)
        times = t0 + (t1 - t0) * np.arange(1, n + 1, dtype=np.float64) / n
        regions: list[tuple[slice, slice, np.ndarray]] = []
        w_img, h_img = self.camera.width, self.camera.height
        gain = torch.from_numpy(self.camera.flicker_gain(times * 1e-6).astype(np.float32))[:, None, None]
        geoms: list[Geometry] = []
        boxes: list[list[int]] = []
        all_times = np.concatenate([[t0], times])
        for inst in insts:
            g = inst.geometry(all_times)
            b = g.boxes()
            box = [math.floor(b[:, 0].min()) - 2, math.floor(b[:, 1].min()) - 2,
                   math.ceil(b[:, 2].max()) + 2, math.ceil(b[:, 3].max()) + 2]
            box = [max(box[0], 0), max(box[1], 0), min(box[2], w_img), min(box[3], h_img)]
            geoms.append(Geometry(g.a[1:], g.b[1:], g.ra[1:], g.rb[1:], g.depth[1:], g.scale[1:], g.visible))
            if box[2] > box[0] and box[3] > box[1]:
                boxes.append(box)
        if self.camera.flicker_hz > 0:
            boxes = [[0, 0, w_img, h_img]]
        for x0, y0, x1, y1 in merge_overlapping_boxes(boxes):
            refl = self.view.bg_refl[y0:y1, x0:x1].expand(n, -1, -1)
            refl = rasterize(insts, geoms, refl, y0, x0)
            rad = (refl * self.view.light[y0:y1, x0:x1] * gain).numpy()
            logf = log_intensity(rad, self.params.log_eps)
            ys, xs = slice(y0, y1), slice(x0, x1)
            prev = self.sim.level[ys, xs]
            step = float(np.abs(np.diff(np.concatenate([prev[None], logf]), axis=0)).max())
            self.stats.max_log_step = max(self.stats.max_log_step, step)
            self.stats.rendered_pixels += logf.size
            regions.append((ys, xs, logf))
        ev = self.sim.advance(times, regions)
        self.t_us = t1
        self.stats.slots += 1
        self.stats.frames += n
        self.stats.events += len(ev)
        self.view.prune(t1, self.slot_us)
        return ev

    def advance_to(self, t_us: int) -> np.ndarray:
        """Return the events with timestamps before ``t_us``.

        Whole slots are simulated (ahead of ``t_us`` when it is not a slot boundary) and the events
        past ``t_us`` are kept for the next call, so the output does not depend on how callers chunk
        time. After a call at a slot boundary the state is the frame at ``t_us``.
        """
        out = [self._pending]
        with torch_threads(1):
            while self.t_us < t_us:
                nxt = (self.t_us // self.slot_us + 1) * self.slot_us
                out.append(self._slot(nxt))
        ev = concat_events(out)
        cut = int(np.searchsorted(ev["t"], t_us, side="left"))
        self._pending = ev[cut:]
        return ev[:cut]
