"""The live world: a continuous, deterministic schedule of people walking through the camera graph.

People arrive as a Poisson process (mean gap ``live_arrival_s``), each picks a route of
``live_route_cameras`` cameras along the graph (a ring cam1 - cam2 - cam3 - cam4 - cam1, both ways, with
a transit-time range per edge), crosses every camera of the route on its lane (entering and leaving
out of view) and then leaves the world; a person is never in two places at once and comes back later.
Several people are often in one camera's view together.

The schedule is a pure function of the seed: it is generated in time order with one random stream,
so every camera actor can build its own ``LiveWorld(config)`` and render only its camera, and the
cameras agree on who is where. ``camera_stream`` yields event packets paced by the wall clock; ground
truth (boxes, identities, reference frames) is available only through :meth:`LiveWorld.ground_truth`,
the side channel for evaluation, never inside the packets.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from anonreid.events.world.build import build_world
from anonreid.events.world.scene import CameraSimulation, CameraView, to_uint8
from anonreid.events.world.schedule import Walk, vec3
from anonreid.orchestration.config import WorldConfig

# (camera a, camera b, min transit s, max transit s); walkable both ways
_EDGES = (("cam1", "cam2", 4.0, 8.0), ("cam2", "cam3", 5.0, 10.0), ("cam3", "cam4", 3.0, 7.0),
          ("cam4", "cam1", 6.0, 12.0))
_BLOCK_US = 20_000_000  # schedule generated ahead in 20 s blocks


def pace(packets: Iterable[np.ndarray], packet_us: int) -> Iterator[np.ndarray]:
    """Release consecutive ``packet_us`` packets when the wall clock reaches each one's end time
    (relative to the first); a consumer that falls behind gets them without waiting."""
    wall0 = time.monotonic()
    for k, packet in enumerate(packets):
        delay = wall0 + (k + 1) * packet_us * 1e-6 - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        yield packet


@dataclass(frozen=True)
class CameraTransition:
    """An allowed move between two cameras and its transit time range (seconds, exit to entry)."""

    src: str
    dst: str
    min_transit_s: float
    max_transit_s: float


@dataclass(frozen=True)
class Visit:
    """One person crossing one camera (ground truth)."""

    identity: str
    camera: str
    t_enter_us: int
    t_exit_us: int
    route_id: int


@dataclass
class GroundTruthWindow:
    """Ground truth of one window of one camera: boxes (K, 4) x1, y1, x2, y2, identities, frame."""

    start_us: int
    boxes: np.ndarray
    identities: list[str]
    reference_frame: np.ndarray | None  # None when asked for boxes only


class LiveWorld:
    """The continuous world of ``config`` (seeded); see the module docstring."""

    def __init__(self, config: WorldConfig) -> None:
        self.config = config
        self.world = build_world(config)
        split = config.live_split
        self.pool = [p for p in self.world.people if split == "all" or p.split == split]
        self._graph = [CameraTransition(a, b, lo, hi) for a, b, lo, hi in _EDGES] + [
            CameraTransition(b, a, lo, hi) for a, b, lo, hi in _EDGES]
        self._rng = np.random.default_rng(np.random.SeedSequence([config.seed, 0x11FE]))
        self._walks: dict[str, list[Walk]] = {c.name: [] for c in self.world.cameras}
        self._starts: dict[str, list[int]] = {c.name: [] for c in self.world.cameras}
        self._visits: list[Visit] = []
        self._free_at = {p.index: 0 for p in self.pool}
        self._next_arrival = int(0.5e6)
        self._horizon = 0
        self._routes = 0
        self._max_visit_us = 0
        self._views: dict[str, CameraView] = {}
        self._lock = threading.Lock()

    # ---- schedule --------------------------------------------------------------------------------
    def camera_graph(self) -> list[CameraTransition]:
        """Allowed transitions between cameras with their transit-time ranges."""
        return list(self._graph)

    def _neighbours(self, cam: str) -> list[CameraTransition]:
        return [e for e in self._graph if e.src == cam]

    def _extend(self, until_us: int) -> None:
        """Generate arrivals (in time order, one random stream) until ``until_us``.

        Thread-safe: a camera source renders on one thread while the node reads ground truth on another.
        """
        if self._horizon >= until_us:
            return
        with self._lock:
            self._extend_locked(until_us)

    def _extend_locked(self, until_us: int) -> None:
        rng = self._rng
        names = [c.name for c in self.world.cameras]
        while self._horizon < until_us:
            horizon = self._horizon + _BLOCK_US  # published once the block's walks are in
            while self._next_arrival < horizon:
                t = self._next_arrival
                self._next_arrival += int(rng.exponential(self.config.live_arrival_s) * 1e6) + 1
                free = [p for p in self.pool if self._free_at[p.index] <= t]
                lo, hi = self.config.live_route_cameras
                length = int(rng.integers(lo, hi + 1))
                start = names[int(rng.integers(len(names)))]
                if not free:
                    continue
                person = free[int(rng.integers(len(free)))]
                route, cam, prev = self._routes, start, None
                self._routes += 1
                for leg in range(length):
                    camera = self.world.camera(cam)
                    lo_s, hi_s = camera.lane_extent
                    sign = 1.0 if rng.random() < 0.5 else -1.0
                    d = camera.heading * sign
                    centre = np.array([camera.lane_x, 0.0, camera.lane_z])
                    side = np.array([-d[2], 0.0, d[0]]) * rng.uniform(-0.3, 0.3)
                    scale = float(np.clip(rng.normal(1.0, 0.04), 0.9, 1.1))
                    start_s = lo_s if sign > 0 else -hi_s
                    length_m = hi_s - lo_s
                    dur = int(length_m / (person.speed * scale) * 1e6)
                    origin = centre + side + d * start_s
                    walk = Walk(person, cam, t, t + dur, vec3(origin), vec3(d), scale,
                                float(rng.uniform(0, 2 * np.pi)))
                    idx = bisect.bisect_right(self._starts[cam], t)
                    self._starts[cam].insert(idx, t)
                    self._walks[cam].insert(idx, walk)
                    self._visits.append(Visit(person.identity, cam, t, t + dur, route))
                    self._max_visit_us = max(self._max_visit_us, dur)
                    t += dur
                    if leg + 1 < length:
                        options = [e for e in self._neighbours(cam) if e.dst != prev] or self._neighbours(cam)
                        edge = options[int(rng.integers(len(options)))]
                        t += int(rng.uniform(edge.min_transit_s, edge.max_transit_s) * 1e6)
                        prev, cam = cam, edge.dst
                self._free_at[person.index] = t + int(5e6)
            self._horizon = horizon

    def walks(self, camera_id: str, t0_us: float, t1_us: float) -> list[Walk]:
        """Walks through ``camera_id`` overlapping [t0, t1)."""
        self.world.camera(camera_id)
        self._extend(int(t1_us) + _BLOCK_US)
        starts = self._starts[camera_id]
        hi = bisect.bisect_left(starts, t1_us)
        lo = bisect.bisect_left(starts, t0_us - self._max_visit_us - 1)
        return [w for w in self._walks[camera_id][lo:hi] if w.t_end_us > t0_us]

    def visits(self, t0_us: int, t1_us: int, camera_id: str | None = None) -> list[Visit]:
        """Ground-truth visits overlapping [t0, t1) (side channel, for evaluation only)."""
        self._extend(int(t1_us) + _BLOCK_US)
        return [v for v in self._visits if v.t_enter_us < t1_us and v.t_exit_us > t0_us
                and (camera_id is None or v.camera == camera_id)]

    # ---- streams ---------------------------------------------------------------------------------
    def camera_stream(self, camera_id: str, start_us: int = 0, realtime: bool = True,
                      packet_us: int = 10_000) -> Iterator[np.ndarray]:
        """Event packets of ``camera_id`` covering [start_us + k packet_us, start_us + (k+1) packet_us).

        With ``realtime`` each packet is released when the wall clock reaches its end time (relative to
        the first packet); a consumer that falls behind gets the packets without waiting.
        """
        if packet_us <= 0:
            raise ValueError(f"packet_us must be > 0, got {packet_us}")
        camera = self.world.camera(camera_id)
        index = [c.name for c in self.world.cameras].index(camera_id)
        seed = np.random.SeedSequence([self.config.seed, 0x57EA, index, int(start_us)])
        sim = CameraSimulation(camera, lambda a, b: self.walks(camera_id, a, b), seed=seed, t0_us=start_us,
                               slot_us=self.config.window_us)

        def rendered() -> Iterator[np.ndarray]:
            t = int(start_us)
            while True:
                t += packet_us
                yield sim.advance_to(t)

        return pace(rendered(), packet_us) if realtime else rendered()

    def ground_truth(self, camera_id: str, t0_us: int, t1_us: int,
                     with_frames: bool = True) -> list[GroundTruthWindow]:
        """Per window starting in [t0, t1): visible people's boxes and identities, and the reference
        frame at the window's end (side channel, for evaluation only). ``with_frames=False`` skips the
        frames (a full render each) when only boxes and identities are needed."""
        w = self.config.window_us
        view = self._views.get(camera_id)
        if view is None:
            cam = self.world.camera(camera_id)
            view = self._views[camera_id] = CameraView(cam, lambda a, b: self.walks(camera_id, a, b))
        starts = np.arange(-(-int(t0_us) // w), -(-int(t1_us) // w), dtype=np.int64) * w
        if len(starts) == 0:
            return []
        walks = self.walks(camera_id, int(starts[0]), int(starts[-1]) + w)
        boxes = view.boxes_over(walks, starts, starts + w)  # NaN where a walk is not in that window
        t_start = np.array([x.t_start_us for x in walks], np.int64)
        t_end = np.array([x.t_end_us for x in walks], np.int64)
        out = []
        for s, window_boxes in zip(starts.tolist(), boxes, strict=True):
            # the walks of this window alone (as ``walks(camera_id, s, s + w)`` lists them), in view
            keep = (t_start < s + w) & (t_end > s) & ~np.isnan(window_boxes).any(axis=1)
            frame = to_uint8(view.render_full(s + w)) if with_frames else None
            out.append(GroundTruthWindow(s, window_boxes[keep],
                                         [x.person.identity for x, kp in zip(walks, keep, strict=True) if kp], frame))
        view.prune(t0_us, 60e6)
        return out
